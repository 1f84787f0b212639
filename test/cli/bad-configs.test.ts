// Bad configs through the real CLI: `check-config` and `run` give the same exit code, error
// code, config path, line and column, and `run` starts nothing. Then a fuzz: whatever the
// config holds, the CLI answers 0 or 1 with a GUARDIAN_E_CONFIG_* code, never an internal
// error or a stack trace.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import type { Test } from 'tap';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { GuardianError } from '../../src/core/errors.js';
import { runCli, type CliResult } from '../fixtures/cli.js';
import { baseDoc, docPaths, mutatedText } from '../fixtures/config-mutations.js';
import { tmpDir } from '../fixtures/ports.js';

// two CLI processes per case, four cases at a time, on a shared machine: more than tap's default 180 s
t.setTimeout(600_000);

const BASE = `version: 1
gateway:
  id: gw-bad
  stateDir: /tmp/guardian-bad-configs
upstream:
  mqtt:
    url: mqtt://127.0.0.1:1883
buses:
  - name: line1
    type: tcp
    host: 10.0.0.2
    port: 502
    devices:
      - name: boiler
        unitId: 1
        points:
          - { name: temp, table: holding, address: 0, type: int16 }
  - name: plc
    type: tcp
    host: 10.0.0.3
    devices:
      - name: press
        unitId: 1
        pollIntervalMs: 500
        points:
          - { name: a, table: holding, address: 0, type: int16 }
          - { name: b, table: holding, address: 1, type: int16 }
          - { name: c, table: holding, address: 2, type: int16 }
`;
const BASE_JSON = JSON.stringify(parse(BASE), null, 2);

interface Case {
  readonly name: string;
  readonly ext?: 'json' | 'yaml';
  /** The file: BASE (or BASE_JSON) with one replacement, or a text of its own. */
  readonly text: string;
  readonly code: 'GUARDIAN_E_CONFIG_INVALID' | 'GUARDIAN_E_CONFIG_PARSE';
  /** The problem line: `line L, column C: ` (L and C where `at` starts in the text) and then this. */
  readonly problem: string | RegExp;
  /** Where the problem points: the first occurrence of this text (undefined: the problem has no line). */
  readonly at?: string;
  /** Characters into `at` where the problem points (default 0). */
  readonly skip?: number;
}

const edit = (from: string, to: string, base = BASE): string => {
  if (!base.includes(from)) throw new Error(`test bug: '${from}' is not in the base config`);
  return base.replace(from, to);
};
const url = (u: string): string => edit('url: mqtt://127.0.0.1:1883', `url: "${u}"`);
const NOT_EXPANDED = (p: string): string => `'${p}' is not expanded: Guardian does not substitute environment variables in its config; write the value itself (or generate the file, e.g. with envsubst)`;
const LIKE = 'write it like mqtt://host:1883 or mqtts://host:8883';

const CASES: readonly Case[] = [
  { name: 'broker port above 65535', text: url('mqtt://broker:99999'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: "upstream.mqtt.url: port 99999 is out of range (1-65535) (got 'mqtt://broker:99999')" },
  { name: 'broker port not digits', text: url('mqtt://broker:abc'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: "upstream.mqtt.url: port 'abc' must be digits only (1-65535) (got 'mqtt://broker:abc')" },
  { name: 'broker port a ${PORT} placeholder', text: url('mqtt://broker:${PORT}'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: `upstream.mqtt.url: ${NOT_EXPANDED('${PORT}')}` },
  { name: 'broker port 0', text: url('mqtt://broker:0'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: "upstream.mqtt.url: port 0 is out of range (1-65535) (got 'mqtt://broker:0')" },
  { name: 'broker port missing after the colon', text: url('mqtt://broker:'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: "upstream.mqtt.url: has ':' but no port after it (got 'mqtt://broker:')" },
  { name: 'broker without a host', text: url('mqtt://:1883'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: `upstream.mqtt.url: has no host; ${LIKE} (got 'mqtt://:1883')` },
  { name: 'broker url with an http scheme', text: url('http://broker'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: `upstream.mqtt.url: unsupported scheme 'http://' (mqtt, tcp; mqtts, tls, ssl for TLS); ${LIKE} (got 'http://broker')` },
  { name: 'broker over WebSocket', text: url('ws://broker:8080'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: `upstream.mqtt.url: MQTT over WebSocket (ws://) is not supported; ${LIKE} (got 'ws://broker:8080')` },
  { name: 'broker url without a scheme', text: url('broker:1883'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: `upstream.mqtt.url: has no scheme; ${LIKE} (got 'broker:1883')` },
  { name: 'broker url with a path', text: url('mqtt://broker:1883/mqtt'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: `upstream.mqtt.url: must not have a path ('/mqtt'); ${LIKE} (got 'mqtt://broker:1883/mqtt')` },
  { name: 'broker url with user:pass@', text: url('mqtt://gw:s3cret-pw@broker:1883'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: /^upstream\.mqtt\.url: must not contain a user name or password \('user:pass@'\): credentials never live in URLs .*\(got 'mqtt:\/\/\*\*\*@broker:1883'\)$/ },
  { name: 'broker url with a query', text: url('mqtt://broker:1883?x=1'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: /^upstream\.mqtt\.url: must not have a query or fragment/ },
  { name: 'broker host not a valid IPv4 address', text: url('mqtt://999.1.1.1:1883'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: "upstream.mqtt.url: '999.1.1.1' is not a valid IPv4 address (got 'mqtt://999.1.1.1:1883')" },
  { name: 'broker IPv6 address without brackets', text: url('mqtt://fd00::1:1883'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: "upstream.mqtt.url: an IPv6 address goes in brackets, like mqtt://[fd00::1:1883]:1883 (got 'mqtt://fd00::1:1883')" },
  { name: 'broker host with non-ASCII letters', text: url('mqtt://brökér.example:1883'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url:', problem: /^upstream\.mqtt\.url: 'brökér\.example' is not a host name: write an international name in its ASCII \(xn--\) form/ },
  { name: 'Modbus host a ${PLC_HOST} placeholder', text: edit('host: 10.0.0.3', 'host: ${PLC_HOST}'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'host: ${PLC_HOST}', problem: `buses[1].host: ${NOT_EXPANDED('${PLC_HOST}')}` },
  { name: 'Modbus host with its port', text: edit('host: 10.0.0.3', 'host: "10.0.0.3:502"'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'host: "10.0.0.3:502"', problem: "buses[1].host: '10.0.0.3:502' is not a host name or IP address (a port goes in its own setting)" },
  { name: 'Modbus host with a space', text: edit('host: 10.0.0.3', 'host: plc one'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'host: plc one', problem: /^buses\[1\]\.host: 'plc one' is not a host name/ },
  { name: 'Modbus port above 65535', text: edit('port: 502', 'port: 70000'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'port: 70000', problem: "buses[0].port: must be a TCP port 1-65535 for type 'tcp'" },
  { name: 'Modbus port 0', text: edit('port: 502', 'port: 0'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'port: 0', problem: "buses[0].port: must be a TCP port 1-65535 for type 'tcp'" },
  { name: 'Modbus port a ${PORT} placeholder', text: edit('port: 502', 'port: ${MODBUS_PORT}'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'port: ${MODBUS_PORT}', problem: `buses[0].port: ${NOT_EXPANDED('${MODBUS_PORT}')}` },
  { name: 'state directory a ${STATE_DIR} placeholder', text: edit('stateDir: /tmp/guardian-bad-configs', 'stateDir: ${STATE_DIR}/gw'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'stateDir:', problem: `gateway.stateDir: ${NOT_EXPANDED('${STATE_DIR}')}` },
  { name: 'wrong type deep in buses[1].devices[0].points[2]', text: edit('{ name: c, table: holding, address: 2,', '{ name: c, table: holding, address: "40003",'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'address: "40003"', problem: "buses[1].devices[0].points[2].address: must be integer (got '40003')" },
  { name: 'unknown key with a did-you-mean', text: edit('pollIntervalMs: 500', 'pollInterval: 500'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'pollInterval:', problem: "buses[1].devices[0].pollInterval: unknown key (did you mean 'pollIntervalMs'?)" },
  { name: 'unit id out of range', text: edit('unitId: 1\n        pollIntervalMs', 'unitId: 300\n        pollIntervalMs'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'unitId: 300', problem: 'buses[1].devices[0].unitId: must be <= 255 (got 300)' },
  { name: 'gateway id with non-ASCII letters', text: edit('id: gw-bad', 'id: Kessel-Ä'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'id: Kessel', problem: /^gateway\.id: must be 1-64 letters, digits/ },
  { name: 'buses missing', text: BASE.slice(0, BASE.indexOf('buses:')), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'version: 1', problem: 'buses: is required' },
  { name: 'YAML: a tab in the indentation', text: edit('    host: 10.0.0.3', '\thost: 10.0.0.3'), code: 'GUARDIAN_E_CONFIG_PARSE', at: '\thost', problem: /^Tabs are not allowed as indentation/ },
  { name: 'YAML: a key twice', text: edit('    host: 10.0.0.3\n', '    host: 10.0.0.3\n    host: 10.0.0.4\n'), code: 'GUARDIAN_E_CONFIG_PARSE', at: 'host: 10.0.0.4', problem: "key 'host' appears twice (lines 20 and 21): keep one" },
  { name: 'YAML: bad indentation', text: edit('    type: tcp\n    host: 10.0.0.3', '    type: tcp\n      host: 10.0.0.3'), code: 'GUARDIAN_E_CONFIG_PARSE', at: 'tcp\n      host', problem: /./ },
  { name: 'YAML: empty file', text: '', code: 'GUARDIAN_E_CONFIG_PARSE', problem: /^the file is empty/ },
  { name: 'YAML: only comments and blank lines', text: '# guardian config\n\n   \n# to do\n', code: 'GUARDIAN_E_CONFIG_PARSE', problem: /^the file is empty/ },
  { name: 'JSON: a trailing comma', ext: 'json', text: edit('"type": "int16"\n', '"type": "int16",\n', BASE_JSON), code: 'GUARDIAN_E_CONFIG_PARSE', at: '"int16",\n            }', skip: 21, problem: /^not valid JSON: Expected double-quoted property name$/ },
  { name: 'JSON: a key twice', ext: 'json', text: edit('"id": "gw-bad",', '"id": "gw-bad",\n    "id": "gw-2",', BASE_JSON), code: 'GUARDIAN_E_CONFIG_PARSE', at: '"id": "gw-2"', problem: "key 'id' appears twice (lines 4 and 5): keep one" },
  { name: 'JSON: a comment (not JSON)', ext: 'json', text: `// my config\n${BASE_JSON}`, code: 'GUARDIAN_E_CONFIG_PARSE', at: '// my', problem: /^not valid JSON: Unexpected token '\/'$/ },
  { name: 'JSON: empty file', ext: 'json', text: '\n  \n', code: 'GUARDIAN_E_CONFIG_PARSE', problem: /^the file is empty/ },
  { name: 'JSON: cut short', ext: 'json', text: BASE_JSON.slice(0, 200), code: 'GUARDIAN_E_CONFIG_PARSE', problem: /^line \d+, column \d+: unexpected end of the file/ },
  { name: 'JSON: a schema problem has its line too', ext: 'json', text: edit('"port": 502', '"port": 99999', BASE_JSON), code: 'GUARDIAN_E_CONFIG_INVALID', at: '"port": 99999', problem: "buses[0].port: must be a TCP port 1-65535 for type 'tcp'" },
  {
    name: 'YAML: 24 problems: 20 shown, then the count',
    text: `${BASE}${Array.from({ length: 24 }, (_, i) => `          - { name: x${i}, table: holding, address: -${i + 1}, type: int16 }\n`).join('')}`,
    code: 'GUARDIAN_E_CONFIG_INVALID', at: 'address: -1,', problem: 'buses[1].devices[0].points[3].address: must be >= 0 (got -1)',
  },
  // issue 13 (the integrator's first hour): what check-config passed and run then failed on
  { name: 'sas without a user name', text: edit('url: mqtt://127.0.0.1:1883', 'url: mqtt://127.0.0.1:1883\n    sas: { resourceUri: h.azure-devices.net/devices/gw }'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'mqtt:', problem: /^upstream\.mqtt\.username: is required with sas: the SAS token is the MQTT password, .*'<hub>\.azure-devices\.net\/<deviceId>\/\?api-version=2021-04-12'$/ },
  { name: 'a uint32 point wider than maxRegistersPerRequest', text: edit('pollIntervalMs: 500\n', 'pollIntervalMs: 500\n        maxRegistersPerRequest: 1\n', edit('{ name: c, table: holding, address: 2, type: int16 }', '{ name: c, table: holding, address: 2, type: uint32 }')), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'maxRegistersPerRequest', problem: "buses[1].devices[0].maxRegistersPerRequest: must be at least 2: point 'c' (uint32) spans 2 registers and one request reads a point whole (got 1)" },
  { name: 'two rtu buses on one serial port', text: edit('type: tcp\n    host: 10.0.0.3', 'type: rtu\n    port: "/dev/ttyS0"', edit('type: tcp\n    host: 10.0.0.2\n    port: 502', 'type: rtu\n    port: /dev/ttyS0')), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'port: "/dev/ttyS0"', problem: /^buses\[1\]\.port: '\/dev\/ttyS0'( \(\S+\))? is also the port of buses\[0\]: one serial line is one bus; put the devices of both on one bus/ },
  { name: 'a bare serial device name', text: edit('type: tcp\n    host: 10.0.0.2\n    port: 502', 'type: rtu\n    port: ttyS0'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'port: ttyS0', problem: "buses[0].port: must be the absolute serial device path: write '/dev/ttyS0' (got 'ttyS0')" },
  { name: 'a topic prefix in the broker\'s $ space', text: edit('url: mqtt://127.0.0.1:1883', 'url: mqtt://127.0.0.1:1883\n    topicPrefix: "$SYS"'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'topicPrefix', problem: "upstream.mqtt.topicPrefix: must not start with '$': MQTT reserves '$' topics ($SYS…) for the broker, which refuses publishes there (got '$SYS')" },
  { name: 'an empty topic prefix', text: edit('url: mqtt://127.0.0.1:1883', 'url: mqtt://127.0.0.1:1883\n    topicPrefix: ""'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'topicPrefix', problem: 'upstream.mqtt.topicPrefix: must not be empty' },
  { name: 'a relative state directory', text: edit('stateDir: /tmp/guardian-bad-configs', 'stateDir: state'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'stateDir', problem: "gateway.stateDir: must be an absolute path: the service runs in '/', not in the directory you test from (got 'state')" },
  { name: 'a state directory under ~', text: edit('stateDir: /tmp/guardian-bad-configs', 'stateDir: ~/state'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'stateDir', problem: "gateway.stateDir: '~' is not expanded: Guardian reads paths as written (no shell); write the full path from '/' (got '~/state')" },
  { name: 'a $HOME in the state directory', text: edit('stateDir: /tmp/guardian-bad-configs', 'stateDir: /tmp/t/$HOME/state'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'stateDir', problem: `gateway.stateDir: ${NOT_EXPANDED('$HOME')}` },
  { name: 'a TLS server name that is an IP address', text: edit('url: mqtt://127.0.0.1:1883', 'url: mqtts://127.0.0.1:8883\n    tls: { ca: /etc/guardian/ca.pem, servername: 10.0.0.1 }'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'servername', problem: /^upstream\.mqtt\.tls\.servername: '10\.0\.0\.1' is an IP address: a TLS server name must be a DNS name/ },
  { name: 'a TLS server name not in its xn-- form', text: edit('url: mqtt://127.0.0.1:1883', 'url: mqtts://127.0.0.1:8883\n    tls: { ca: /etc/guardian/ca.pem, servername: bücher.example }'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'servername', problem: /^upstream\.mqtt\.tls\.servername: 'bücher\.example' is not a host name: write an international name in its ASCII \(xn--\) form/ },
  ...[['0.0.0.0', 'is the unspecified address'], ['255.255.255.255', 'is the broadcast address'], ['224.0.0.1', 'is a multicast address']].map(([host = '', why = '']): Case => ({
    name: `Modbus host ${host}`, text: edit('host: 10.0.0.3', `host: "${host}"`), code: 'GUARDIAN_E_CONFIG_INVALID', at: `host: "${host}"`, problem: new RegExp(`^buses\\[1\\]\\.host: '${host.replace(/\./g, '\\.')}' ${why}.*Modbus TCP connects to one device: write its own address$`),
  })),
  { name: 'a baud rate the schema refuses', text: edit('type: tcp\n    host: 10.0.0.2\n    port: 502', 'type: rtu\n    port: /dev/ttyS0\n    baudRate: 7'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'baudRate', problem: /^buses\[0\]\.baudRate: must be one of 300, .* \(got 7\)$/ },
  // issue 13, findings 10, 11, 18: the yaml library's own words never reach a person; values are escaped and cut
  { name: 'YAML: an alias to no anchor', text: edit('id: gw-bad', 'id: *nothere'), code: 'GUARDIAN_E_CONFIG_PARSE', at: '*nothere', problem: "alias '*nothere' names no anchor before it (write '&nothere' on an earlier value, or the value itself)" },
  { name: 'YAML: an alias before its anchor', text: edit('stateDir: /tmp/guardian-bad-configs', 'stateDir: &d /tmp/guardian-bad-configs', edit('id: gw-bad', 'id: *d')), code: 'GUARDIAN_E_CONFIG_PARSE', at: '*d', problem: /^alias '\*d' names no anchor before it/ },
  { name: 'YAML: an alias bomb', text: `${BASE}x0: &a0 [x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 5 }, (_, i) => `x${i + 1}: &a${i + 1} [${Array.from({ length: 9 }, () => `*a${i}`).join(', ')}]\n`).join('')}`, code: 'GUARDIAN_E_CONFIG_PARSE', at: '*a0', problem: /^the aliases expand to too many values \(more than 1000; an alias bomb\?\)/ },
  { name: 'YAML: two documents', text: `${BASE}---\nversion: 1\n`, code: 'GUARDIAN_E_CONFIG_PARSE', at: '---', problem: 'one YAML document per file (found 2; the second starts here)' },
  { name: "YAML: only '---'", text: '---\n', code: 'GUARDIAN_E_CONFIG_PARSE', problem: /^the file is empty/ },
  { name: 'YAML: a list as a key', text: `${BASE}? [a, b]\n: 1\n`, code: 'GUARDIAN_E_CONFIG_PARSE', at: '[a, b]', problem: /^a key must be plain text or a number, not a list or map/ },
  { name: 'YAML: nested 2000 deep', text: `${BASE}x: ${'['.repeat(2000)}${']'.repeat(2000)}\n`, code: 'GUARDIAN_E_CONFIG_PARSE', problem: /nested too deeply to read|nested more than 32 levels deep/ },
  { name: 'YAML: nested 40 deep', text: `${BASE}x: ${'['.repeat(40)}${']'.repeat(40)}\n`, code: 'GUARDIAN_E_CONFIG_PARSE', at: '['.repeat(8), skip: 31, problem: 'nested more than 32 levels deep: no setting is that deep' },
  { name: 'YAML: unitId 1e400', text: edit('unitId: 1\n', 'unitId: 1e400\n'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'unitId: 1e400', problem: 'buses[0].devices[0].unitId: must be a finite number (got .inf, or a number too large to hold)' },
  { name: 'YAML: .nan', text: edit('address: 0, type: int16 }\n  - name: plc', 'address: .nan, type: int16 }\n  - name: plc'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'address: .nan', problem: 'buses[0].devices[0].points[0].address: must be a finite number (got .nan)' },
  { name: 'YAML: url 5 is one problem', text: edit('url: mqtt://127.0.0.1:1883', 'url: 5'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url: 5', problem: 'upstream.mqtt.url: must be string (got 5)' },
  { name: 'YAML: a password without ://', text: edit('url: mqtt://127.0.0.1:1883', 'url: "mqtt:admin:hunter2@127.0.0.1:1883"'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'url: "mqtt:', problem: /^upstream\.mqtt\.url: must not contain a user name or password .*\(got '\*\*\*@127\.0\.0\.1:1883'\)$/ },
  { name: 'YAML: a newline and a NUL are escaped', text: edit('type: tcp\n    host: 10.0.0.3', 'type: "t\\ncp\\0"\n    host: 10.0.0.3'), code: 'GUARDIAN_E_CONFIG_INVALID', at: 'type: "t', problem: "buses[1].type: must be one of 'rtu', 'tcp', 'rtu-over-tcp' (got 't\\ncp\\0')" },
  { name: 'YAML: a long value is cut', text: edit('type: tcp\n    host: 10.0.0.3', `type: ${'a'.repeat(70000)}\n    host: 10.0.0.3`), code: 'GUARDIAN_E_CONFIG_INVALID', at: `type: ${'a'.repeat(10)}`, problem: `buses[1].type: must be one of 'rtu', 'tcp', 'rtu-over-tcp' (got '${'a'.repeat(80)}…')` },
  { name: 'JSON: Infinity by size', ext: 'json', text: edit('"unitId": 1,', '"unitId": 1e400,', BASE_JSON), code: 'GUARDIAN_E_CONFIG_INVALID', at: '"unitId": 1e400', problem: 'buses[0].devices[0].unitId: must be a finite number (got .inf, or a number too large to hold)' },
];

/** 1-based line and column of the first occurrence of `at` in text. */
function where(text: string, at: string, skip = 0): string {
  const offset = text.indexOf(at) + skip;
  if (offset < 0) throw new Error(`test bug: '${JSON.stringify(at)}' is not in the case's text`);
  const lines = text.slice(0, offset).split('\n');
  return `line ${lines.length}, column ${(lines[lines.length - 1]?.length ?? 0) + 1}: `;
}

function checkOutput(t: Test, c: Case, file: string, res: CliResult, what: string): void {
  t.equal(res.code, 1, `${c.name} (${what}): exit 1`);
  const lines = res.stderr.split('\n');
  const head = lines.findIndex((l) => l.startsWith('guardian: GUARDIAN_E_'));
  t.match(lines[head], new RegExp(`^guardian: ${c.code}: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has \\d+ problems?:$`), `${c.name} (${what}): the code`);
  const prefix = c.at === undefined ? '' : where(c.text, c.at, c.skip);
  const found = lines.slice(head + 1).some((l) => l.startsWith(prefix)
    && (typeof c.problem === 'string' ? l.slice(prefix.length) === c.problem : c.problem.test(l.slice(prefix.length))));
  t.ok(found, `${c.name} (${what}): '${prefix}' and the problem\n${res.stderr}`);
  t.notMatch(res.stdout + res.stderr, /GUARDIAN_E_INTERNAL|guardian starting|\n\s+at /, `${c.name} (${what}): nothing started, no internal error, no stack`);
}

t.test(`${CASES.length} bad configs: check-config and run agree on the code, the path, the line and the column`, async (t) => {
  t.ok(CASES.length >= 30);
  const dir = await tmpDir(t);
  const files = CASES.map((c, i) => {
    const file = path.join(dir, `bad-${i}.${c.ext ?? 'yaml'}`);
    writeFileSync(file, c.text);
    return file;
  });
  for (let i = 0; i < CASES.length; i += 4) { // a few processes at a time: the machine is shared
    const batch = CASES.slice(i, i + 4).map(async (c, j) => {
      const file = files[i + j] ?? '';
      const [check, run] = await Promise.all([runCli(['check-config', file]), runCli(['run', '--config', file])]);
      return { c, file, check, run };
    });
    for (const { c, file, check, run } of await Promise.all(batch)) {
      checkOutput(t, c, file, check, 'check-config');
      checkOutput(t, c, file, run, 'run');
      t.equal(run.stderr.replace(/^(?!guardian: |line |the file|… and).*\n/gm, ''), check.stderr.replace(/^(?!guardian: |line |the file|… and).*\n/gm, ''), `${c.name}: run prints what check-config prints`);
    }
  }
  const capped = await runCli(['check-config', files[CASES.findIndex((c) => c.name.startsWith('YAML: 24 problems'))] ?? '']);
  const lines = capped.stderr.trimEnd().split('\n');
  const count = Number(/has (\d+) problems:$/.exec(lines[0] ?? '')?.[1]);
  t.ok(count > 20, `more than 20 problems (${count})`);
  t.equal(lines.length, 1 + 20 + 1, 'the head, 20 problems, and the count of the rest');
  t.equal(lines[21], `… and ${count - 20} more`);
});

/** The loader's verdict in-process: undefined (accepted) or its error code. */
function loaderCode(text: string, file: string): string | undefined {
  try {
    parseConfig(text, file);
    return undefined;
  } catch (err) {
    return err instanceof GuardianError ? err.code : 'not a GuardianError';
  }
}

t.test('fuzz: check-config refuses a mutated config with the loader\'s CONFIG code, and never shows an internal error or a stack', async (t) => {
  const seed = Number.parseInt(process.env['FC_SEED'] ?? String(Date.now() % 1_000_000), 10);
  const dir = await tmpDir(t);
  let n = 0;
  const property = fc.asyncProperty(mutatedText(docPaths(baseDoc(dir))), async ({ text, file }) => {
    const target = path.join(dir, `${n++}-${file}`);
    writeFileSync(target, text);
    const expected = loaderCode(text, target);
    const res = await runCli(['check-config', target]);
    if (/GUARDIAN_E_INTERNAL|\n\s+at |Error:/.test(res.stderr)) return false;
    // accepted by the loader: OK, or a problem with a file or the manifest it names (other checks)
    if (expected === undefined) return res.code === 0 || (res.code === 1 && res.stderr.startsWith('guardian: GUARDIAN_E_'));
    return expected.startsWith('GUARDIAN_E_CONFIG_') && res.code === 1 && res.stderr.startsWith(`guardian: ${expected}: `);
  });
  await t.resolves(fc.assert(property, { seed, numRuns: 25 }), `seed ${seed} (rerun with FC_SEED=${seed})`);
});
