import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import type { ConfigError} from '../../src/config/load.js';
import { parseConfig } from '../../src/config/load.js';
import { manifestFor } from '../../src/firewall/config-coverage.js';
import { runCli } from '../fixtures/cli.js';

type Doc = Record<string, unknown>;

/** A problem without its `line L, column C: ` prefix (test/config/positions.test.ts checks those). */
const unplaced = (p: string): string => p.replace(/^line \d+, column \d+: /, '');

function base(): Doc {
  return {
    version: 1,
    gateway: { id: 'gw1' },
    upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } },
    buses: [
      {
        name: 'line1', type: 'rtu', port: '/dev/ttyUSB0',
        devices: [{ name: 'boiler', unitId: 1, points: [{ name: 'temp', table: 'holding', address: 0, type: 'int16' }] }],
      },
      {
        name: 'plc', type: 'tcp', host: '10.0.0.2',
        devices: [{ name: 'press', unitId: 1, points: [{ name: 'cycles', table: 'input', address: 0, type: 'uint32' }] }],
      },
    ],
  };
}

// Helpers to reach into the base document.
type Mutate = (d: Doc) => void;
const bus = (d: Doc, i: number): Doc => (d['buses'] as Doc[])[i] as Doc;
const device = (d: Doc, b: number, i = 0): Doc => (bus(d, b)['devices'] as Doc[])[i] as Doc;
const point = (d: Doc, b: number, i = 0): Doc => (device(d, b)['points'] as Doc[])[i] as Doc;
const mqtt = (d: Doc): Doc => (d['upstream'] as Doc)['mqtt'] as Doc;

const NO_CREDENTIALS = 'credentials never live in URLs (they end up in logs, shell history and backups)';

/** An IoT Hub MQTT user name: sas needs one. */
const IOT_HUB_USER = 'h.azure-devices.net/gw/?api-version=2021-04-12';
const SAS_USER = "upstream.mqtt.username: is required with sas: the SAS token is the MQTT password, and MQTT sends no password without a user name; for Azure IoT Hub write '<hub>.azure-devices.net/<deviceId>/?api-version=2021-04-12'";
const DOLLAR = "upstream.mqtt.topicPrefix: must not start with '$': MQTT reserves '$' topics ($SYS…) for the broker, which refuses publishes there (got '$SYS')";
const RELATIVE = (p: string): string => `must be an absolute path: the service runs in '/', not in the directory you test from (got '${p}')`;
const NOT_EXPANDED = (v: string): string => `'${v}' is not expanded: Guardian does not substitute environment variables in its config; write the value itself (or generate the file, e.g. with envsubst)`;
const ONE_DEVICE = 'Modbus TCP connects to one device: write its own address';

const cases: { name: string; mutate: Mutate; expect: string[] }[] = [
  { name: 'unknown top-level key with a suggestion', mutate: (d) => { d['gatway'] = {}; }, expect: ["gatway: unknown key (did you mean 'gateway'?)"] },
  { name: 'unknown device key', mutate: (d) => { device(d, 0)['pollInterval'] = 100; }, expect: ["buses[0].devices[0].pollInterval: unknown key (did you mean 'pollIntervalMs'?)"] },
  { name: 'missing gateway id', mutate: (d) => { d['gateway'] = {}; }, expect: ['gateway.id: is required'] },
  { name: 'wrong version', mutate: (d) => { d['version'] = 2; }, expect: ['version: must be 1 (got 2)'] },
  { name: 'bad gateway id', mutate: (d) => { (d['gateway'] as Doc)['id'] = 'my gw'; }, expect: ["gateway.id: must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit (got 'my gw')"] },
  { name: 'no buses', mutate: (d) => { d['buses'] = []; }, expect: ['buses: must have at least 1 item'] },
  { name: 'bad bus type', mutate: (d) => { bus(d, 0)['type'] = 'rs485'; }, expect: ["buses[0].type: must be one of 'rtu', 'tcp', 'rtu-over-tcp' (got 'rs485')"] },
  { name: 'bad baud rate', mutate: (d) => { bus(d, 0)['baudRate'] = 9601; }, expect: ['buses[0].baudRate: must be one of 300, 600, 1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400 (got 9601)'] },
  { name: 'serial options on a tcp bus', mutate: (d) => { bus(d, 1)['parity'] = 'even'; }, expect: ['buses[1].parity: only applies to rtu (serial) buses'] },
  { name: 'tcp bus without host', mutate: (d) => { delete bus(d, 1)['host']; }, expect: ["buses[1].host: is required for type 'tcp'"] },
  { name: 'tcp port out of range', mutate: (d) => { bus(d, 1)['port'] = 70000; }, expect: ["buses[1].port: must be a TCP port 1-65535 for type 'tcp'"] },
  { name: 'rtu bus with a numeric port', mutate: (d) => { bus(d, 0)['port'] = 502; }, expect: ["buses[0].port: must be a serial device path for type 'rtu'"] },
  { name: 'unit id 0 on a serial line', mutate: (d) => { device(d, 0)['unitId'] = 0; }, expect: ['buses[0].devices[0].unitId: must be 1-247 on a serial bus (got 0)'] },
  { name: 'unit id above 255', mutate: (d) => { device(d, 1)['unitId'] = 256; }, expect: ['buses[1].devices[0].unitId: must be <= 255 (got 256)'] },
  { name: 'duplicate device names across buses', mutate: (d) => { device(d, 1)['name'] = 'boiler'; }, expect: ["buses[1].devices[0].name: duplicates buses[0].devices[0] ('boiler'); device names are unique per gateway"] },
  { name: 'duplicate bus names', mutate: (d) => { bus(d, 1)['name'] = 'line1'; }, expect: ["buses[1].name: duplicates buses[0] ('line1')"] },
  {
    name: 'duplicate unit ids on one bus',
    mutate: (d) => { (bus(d, 0)['devices'] as Doc[]).push({ name: 'b2', unitId: 1, points: [{ name: 'x', table: 'coil', address: 0, type: 'bool' }] }); },
    expect: ['buses[0].devices[1].unitId: duplicates devices[0] on this bus (1)'],
  },
  {
    name: 'duplicate point names',
    mutate: (d) => { (device(d, 0)['points'] as Doc[]).push({ name: 'temp', table: 'holding', address: 1, type: 'int16' }); },
    expect: ["buses[0].devices[0].points[1].name: duplicates points[0] ('temp')"],
  },
  { name: 'bad table', mutate: (d) => { point(d, 0)['table'] = 'register'; }, expect: ["buses[0].devices[0].points[0].table: must be one of 'coil', 'discrete', 'input', 'holding' (got 'register')"] },
  { name: 'bad type', mutate: (d) => { point(d, 0)['type'] = 'float16'; }, expect: ["buses[0].devices[0].points[0].type: must be one of 'bool', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64', 'string', 'bit' (got 'float16')"] },
  { name: 'non-bool type on a coil', mutate: (d) => { point(d, 0)['table'] = 'coil'; }, expect: ["buses[0].devices[0].points[0].type: must be 'bool' for table 'coil' (got 'int16')"] },
  { name: 'bit type without bit', mutate: (d) => { point(d, 0)['type'] = 'bit'; }, expect: ["buses[0].devices[0].points[0].bit: is required for type 'bit'"] },
  { name: 'bit out of range', mutate: (d) => { Object.assign(point(d, 0), { type: 'bit', bit: 16 }); }, expect: ['buses[0].devices[0].points[0].bit: must be <= 15 (got 16)'] },
  { name: 'string without length', mutate: (d) => { point(d, 0)['type'] = 'string'; }, expect: ["buses[0].devices[0].points[0].length: is required for type 'string' (registers)"] },
  { name: 'length on a number', mutate: (d) => { point(d, 0)['length'] = 2; }, expect: ["buses[0].devices[0].points[0].length: only applies to type 'string'"] },
  { name: 'scale on a bool', mutate: (d) => { Object.assign(point(d, 0), { table: 'coil', type: 'bool', scale: 2 }); }, expect: ["buses[0].devices[0].points[0].scale: only applies to numeric types (got type 'bool')"] },
  { name: 'scale of zero', mutate: (d) => { point(d, 0)['scale'] = 0; }, expect: ['buses[0].devices[0].points[0].scale: must not be 0'] },
  { name: 'deadband without report-on-change', mutate: (d) => { point(d, 0)['deadband'] = 0.5; }, expect: ['buses[0].devices[0].points[0].deadband: only applies with reportOnChange: true'] },
  { name: 'heartbeat without report-on-change', mutate: (d) => { point(d, 0)['heartbeatMs'] = 1000; }, expect: ['buses[0].devices[0].points[0].heartbeatMs: only applies with reportOnChange: true'] },
  { name: 'point runs past the address space', mutate: (d) => { Object.assign(point(d, 0), { address: 65535, type: 'float32' }); }, expect: ['buses[0].devices[0].points[0].address: point spans 2 registers and runs past 65535'] },
  { name: 'negative address', mutate: (d) => { point(d, 0)['address'] = -1; }, expect: ['buses[0].devices[0].points[0].address: must be >= 0 (got -1)'] },
  { name: 'address as a string', mutate: (d) => { point(d, 0)['address'] = '40001'; }, expect: ["buses[0].devices[0].points[0].address: must be integer (got '40001')"] },
  { name: 'request size above the protocol limit', mutate: (d) => { device(d, 0)['maxRegistersPerRequest'] = 126; }, expect: ['buses[0].devices[0].maxRegistersPerRequest: must be <= 125 (got 126)'] },
  { name: 'bad broker url', mutate: (d) => { mqtt(d)['url'] = 'http://broker'; }, expect: ["upstream.mqtt.url: unsupported scheme 'http://' (mqtt, tcp; mqtts, tls, ssl for TLS); write it like mqtt://host:1883 or mqtts://host:8883 (got 'http://broker')"] },
  { name: 'mqtts without a pinned CA', mutate: (d) => { mqtt(d)['url'] = 'mqtts://broker:8883'; }, expect: ['upstream.mqtt.tls: is required for mqtts:// (the broker CA is pinned)'] },
  { name: 'tls on a plain url', mutate: (d) => { mqtt(d)['tls'] = { ca: '/ca.pem' }; }, expect: ["upstream.mqtt.tls: needs an mqtts:// url (got 'mqtt://127.0.0.1:1883')"] },
  { name: 'client cert without key', mutate: (d) => { Object.assign(mqtt(d), { url: 'mqtts://b:8883', tls: { ca: '/ca', cert: '/c' } }); }, expect: ['upstream.mqtt.tls: cert and key must be given together'] },
  { name: 'identity TLS with a key file too', mutate: (d) => { Object.assign(mqtt(d), { url: 'mqtts://b:8883', tls: { ca: '/ca', identity: true, cert: '/c', key: '/k' } }); }, expect: ['upstream.mqtt.tls: identity: true takes the key from the key store; remove cert and key'] },
  { name: 'SAS renewal not before expiry', mutate: (d) => { mqtt(d)['username'] = IOT_HUB_USER; mqtt(d)['sas'] = { resourceUri: 'h.azure-devices.net/devices/gw', ttlS: 120, renewBeforeS: 120 }; }, expect: ['upstream.mqtt.sas.renewBeforeS: must be less than ttlS (120), or every token would be renewed at once'] },
  { name: 'SAS default renewal above a short ttl', mutate: (d) => { mqtt(d)['username'] = IOT_HUB_USER; mqtt(d)['sas'] = { resourceUri: 'h.azure-devices.net/devices/gw', ttlS: 60 }; }, expect: ['upstream.mqtt.sas.renewBeforeS: must be less than ttlS (60), or every token would be renewed at once'] },
  { name: 'SAS without a resource', mutate: (d) => { mqtt(d)['username'] = IOT_HUB_USER; mqtt(d)['sas'] = {}; }, expect: ['upstream.mqtt.sas.resourceUri: is required'] },
  { name: 'unknown identity backend', mutate: (d) => { d['identity'] = { backend: 'hsm' }; }, expect: ["identity.backend: must be one of 'auto', 'tpm', 'pluton-sim' (got 'hsm')"] },
  { name: 'persistent handle outside the owner range', mutate: (d) => { d['identity'] = { tpm: { handleBase: 0x80000000 } }; }, expect: ['identity.tpm.handleBase: must be >= 2164260864 (got 2147483648)'] },
  { name: 'bad PCR selection', mutate: (d) => { d['identity'] = { attestPcrs: 'sha256:all' }; }, expect: ["identity.attestPcrs: must be a PCR selection like sha256:0,1,2,3,4,5,6,7 (got 'sha256:all')"] },
  { name: 'password in the config', mutate: (d) => { mqtt(d)['password'] = 'hunter2'; }, expect: ['upstream.mqtt.password: unknown key'] },
  {
    name: 'user name and password in the broker url',
    mutate: (d) => { mqtt(d)['url'] = 'mqtt://guardian:hunter2-pw@broker.example:1883'; },
    expect: [`upstream.mqtt.url: must not contain a user name or password ('user:pass@'): ${NO_CREDENTIALS}; use upstream.mqtt.username with upstream.mqtt.sas, or a client certificate (upstream.mqtt.tls) (got 'mqtt://***@broker.example:1883')`],
  },
  {
    name: 'an unencoded password that also breaks the url pattern is not echoed either',
    mutate: (d) => { mqtt(d)['url'] = "mqtts://gw:pa/ss w'rd@broker:8883"; mqtt(d)['tls'] = { ca: '/ca.pem' }; },
    expect: [
      `upstream.mqtt.url: must not contain a user name or password ('user:pass@'): ${NO_CREDENTIALS}; use upstream.mqtt.username with upstream.mqtt.sas, or a client certificate (upstream.mqtt.tls) (got 'mqtts://***@broker:8883')`,
    ],
  },
  { name: 'a query in the broker url', mutate: (d) => { mqtt(d)['url'] = 'mqtt://broker:1883?password=hunter2'; }, expect: [`upstream.mqtt.url: must not have a query or fragment ('?…', '#…'): ${NO_CREDENTIALS}`] },
  { name: 'credentials in the SAS resource', mutate: (d) => { mqtt(d)['username'] = IOT_HUB_USER; mqtt(d)['sas'] = { resourceUri: 'gw:hunter2@hub.azure-devices.net/devices/gw' }; }, expect: [`upstream.mqtt.sas.resourceUri: must not contain a user name or password ('user:pass@'): ${NO_CREDENTIALS}`] },
  { name: 'credentials in a Modbus TCP host', mutate: (d) => { bus(d, 1)['host'] = 'admin:hunter2@10.0.0.2'; }, expect: [`buses[1].host: must not contain a user name or password ('user:pass@'): ${NO_CREDENTIALS}`] },
  { name: 'a response timeout within t3.5 of the serial line', mutate: (d) => { device(d, 0)['timeoutMs'] = 3; }, expect: ["buses[0].devices[0].timeoutMs: must be longer than the line's inter-frame silence t3.5 (3.646 ms at 9600 baud), which every request waits first"] },
  { name: 'a response timeout within t3.5 at 1200 baud 8E1', mutate: (d) => { Object.assign(bus(d, 0), { baudRate: 1200, parity: 'even' }); device(d, 0)['timeoutMs'] = 32; }, expect: ["buses[0].devices[0].timeoutMs: must be longer than the line's inter-frame silence t3.5 (32.083 ms at 1200 baud), which every request waits first"] },
  { name: 'stop-polling on the memory store', mutate: (d) => { d['outbox'] = { store: 'memory', policy: 'stop-polling' }; }, expect: ["outbox.policy: 'stop-polling' needs store 'sqlite' (the memory store always drops the oldest)"] },
  { name: 'bad outbox policy', mutate: (d) => { d['outbox'] = { policy: 'drop-newest' }; }, expect: ["outbox.policy: must be one of 'drop-oldest', 'stop-polling' (got 'drop-newest')"] },
  { name: 'bad protocol version', mutate: (d) => { mqtt(d)['protocolVersion'] = 3; }, expect: ['upstream.mqtt.protocolVersion: must be one of 4, 5 (got 3)'] },
  { name: 'backoff initial above max', mutate: (d) => { mqtt(d)['reconnect'] = { initialMs: 5000, maxMs: 1000 }; }, expect: ['upstream.mqtt.reconnect.initialMs: must not exceed maxMs (1000)'] },
  { name: 'SAS without a user name', mutate: (d) => { mqtt(d)['sas'] = { resourceUri: 'h.azure-devices.net/devices/gw' }; }, expect: [SAS_USER] },
  { name: 'identity TLS and SAS without a user name', mutate: (d) => { Object.assign(mqtt(d), { url: 'mqtts://b:8883', tls: { ca: '/ca', identity: true }, sas: { resourceUri: 'h.azure-devices.net/devices/gw' } }); }, expect: [SAS_USER] },
  { name: 'a uint32 wider than the request size', mutate: (d) => { device(d, 1)['maxRegistersPerRequest'] = 1; }, expect: ["buses[1].devices[0].maxRegistersPerRequest: must be at least 2: point 'cycles' (uint32) spans 2 registers and one request reads a point whole (got 1)"] },
  { name: 'a 10-register string wider than the request size', mutate: (d) => { device(d, 1)['maxRegistersPerRequest'] = 3; (device(d, 1)['points'] as Doc[]).push({ name: 'tag', table: 'holding', address: 10, type: 'string', length: 10 }); }, expect: ["buses[1].devices[0].maxRegistersPerRequest: must be at least 10: point 'tag' (string) spans 10 registers and one request reads a point whole (got 3)"] },
  { name: 'coils do not count against the register request size', mutate: (d) => { device(d, 1)['maxRegistersPerRequest'] = 2; device(d, 1)['maxBitsPerRequest'] = 1; (device(d, 1)['points'] as Doc[]).push({ name: 'run', table: 'coil', address: 0, type: 'bool' }); point(d, 1)['table'] = 'input'; bus(d, 1)['host'] = 'boiler.example'; mqtt(d)['topicPrefix'] = '$SYS'; }, expect: [DOLLAR] },
  { name: 'two rtu buses on one serial port', mutate: (d) => { (d['buses'] as Doc[]).push({ ...bus(d, 0), name: 'line2', devices: [{ name: 'b2', unitId: 2, points: [{ name: 'x', table: 'coil', address: 0, type: 'bool' }] }] }); }, expect: ["buses[2].port: '/dev/ttyUSB0' is also the port of buses[0]: one serial line is one bus; put the devices of both on one bus (unit ids tell them apart)"] },
  { name: 'a bare serial device name', mutate: (d) => { bus(d, 0)['port'] = 'ttyS0'; }, expect: ["buses[0].port: must be the absolute serial device path: write '/dev/ttyS0' (got 'ttyS0')"] },
  { name: 'a serial path without its leading slash', mutate: (d) => { bus(d, 0)['port'] = 'dev/ttyUSB0'; }, expect: ["buses[0].port: must be the absolute serial device path: write '/dev/ttyUSB0' (got 'dev/ttyUSB0')"] },
  { name: 'a topic prefix starting with $', mutate: (d) => { mqtt(d)['topicPrefix'] = '$SYS'; }, expect: [DOLLAR] },
  { name: 'an empty topic prefix', mutate: (d) => { mqtt(d)['topicPrefix'] = ''; }, expect: ['upstream.mqtt.topicPrefix: must not be empty'] },
  { name: 'a topic prefix with a wildcard', mutate: (d) => { mqtt(d)['topicPrefix'] = 'plant/#'; }, expect: ["upstream.mqtt.topicPrefix: must not contain '#', '+' or white space (got 'plant/#')"] },
  { name: 'a relative state directory', mutate: (d) => { d['gateway'] = { id: 'gw1', stateDir: 'state' }; }, expect: [`gateway.stateDir: ${RELATIVE('state')}`] },
  { name: 'a state directory under ~', mutate: (d) => { d['gateway'] = { id: 'gw1', stateDir: '~/state' }; }, expect: ["gateway.stateDir: '~' is not expanded: Guardian reads paths as written (no shell); write the full path from '/' (got '~/state')"] },
  { name: 'a $HOME in the state directory', mutate: (d) => { d['gateway'] = { id: 'gw1', stateDir: '/tmp/t/$HOME/state' }; }, expect: [`gateway.stateDir: ${NOT_EXPANDED('$HOME')}`] },
  { name: 'relative manifest, TLS and identity files', mutate: (d) => { d['firewall'] = { manifest: 'app_manifest.json' }; d['identity'] = { tpm: { ownerAuthFile: 'auth' }, plutonSim: { secretFile: './s' } }; Object.assign(mqtt(d), { url: 'mqtts://b:8883', tls: { ca: 'ca.pem', cert: 'c.pem', key: '/k.pem' } }); },
    expect: [`firewall.manifest: ${RELATIVE('app_manifest.json')}`, `identity.tpm.ownerAuthFile: ${RELATIVE('auth')}`, `identity.plutonSim.secretFile: ${RELATIVE('./s')}`, `upstream.mqtt.tls.ca: ${RELATIVE('ca.pem')}`, `upstream.mqtt.tls.cert: ${RELATIVE('c.pem')}`] },
  { name: 'a TLS server name that is an IP address', mutate: (d) => { Object.assign(mqtt(d), { url: 'mqtts://b:8883', tls: { ca: '/ca', servername: '10.0.0.1' } }); }, expect: ["upstream.mqtt.tls.servername: '10.0.0.1' is an IP address: a TLS server name must be a DNS name (TLS sends no server name for an address); leave servername out to check the certificate against the url's address"] },
  { name: 'a TLS server name with a space', mutate: (d) => { Object.assign(mqtt(d), { url: 'mqtts://b:8883', tls: { ca: '/ca', servername: 'bad name' } }); }, expect: ["upstream.mqtt.tls.servername: 'bad name' is not a host name: write an international name in its ASCII (xn--) form, without spaces"] },
  { name: 'a TLS server name not in its xn-- form', mutate: (d) => { Object.assign(mqtt(d), { url: 'mqtts://b:8883', tls: { ca: '/ca', servername: 'bücher.example' } }); }, expect: ["upstream.mqtt.tls.servername: 'bücher.example' is not a host name: write an international name in its ASCII (xn--) form, without spaces"] },
  ...['0.0.0.0', '::', '0:0::0'].map((host) => ({ name: `Modbus host ${host}`, mutate: (d: Doc) => { bus(d, 1)['host'] = host; }, expect: [`buses[1].host: '${host}' is the unspecified address (${host.includes(':') ? '::' : '0.0.0.0/8'}), which names no device; ${ONE_DEVICE}`] })),
  { name: 'Modbus host the broadcast address', mutate: (d) => { bus(d, 1)['host'] = '255.255.255.255'; }, expect: [`buses[1].host: '255.255.255.255' is the broadcast address; ${ONE_DEVICE}`] },
  ...['224.0.0.1', '239.255.255.250'].map((host) => ({ name: `Modbus host ${host}`, mutate: (d: Doc) => { bus(d, 1)['host'] = host; }, expect: [`buses[1].host: '${host}' is a multicast address (224.0.0.0/4); ${ONE_DEVICE}`] })),
  { name: 'Modbus host an IPv6 multicast address', mutate: (d) => { bus(d, 1)['host'] = 'ff02::1'; }, expect: [`buses[1].host: 'ff02::1' is a multicast address (ff00::/8); ${ONE_DEVICE}`] },
  { name: 'a baud rate the schema refuses gets no t3.5 problem too', mutate: (d) => { bus(d, 0)['baudRate'] = 7; device(d, 0)['timeoutMs'] = 1; }, expect: ['buses[0].baudRate: must be one of 300, 600, 1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400 (got 7)'] },
  {
    name: 'several problems are all reported at once',
    mutate: (d) => { d['gatway'] = 1; point(d, 0)['type'] = 'bit'; bus(d, 1)['port'] = 0; mqtt(d)['protocolVersion'] = 6; },
    expect: [
      "gatway: unknown key (did you mean 'gateway'?)",
      'upstream.mqtt.protocolVersion: must be one of 4, 5 (got 6)',
      "buses[0].devices[0].points[0].bit: is required for type 'bit'",
      "buses[1].port: must be a TCP port 1-65535 for type 'tcp'",
    ],
  },
];

t.test('the base config is valid and frozen, with defaults filled in', async (t) => {
  const config = parseConfig(stringify(base()));
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.buses[0]?.devices[0]?.points[0]));
  const rtu = config.buses[0];
  t.equal(rtu?.type === 'rtu' && rtu.baudRate, 9600);
  t.equal(config.buses[1]?.type === 'tcp' && config.buses[1].port, 502);
  t.match(config.buses[0]?.devices[0], { pollIntervalMs: 1000, timeoutMs: 1000, retries: 1, maxGap: 16, byteOrder: 'big' });
  t.match(config.buses[0]?.devices[0]?.points[0], { scale: 1, offset: 0, deadband: 0, reportOnChange: false, byteOrder: 'big', wordOrder: 'big' });
  t.match(config.upstream.mqtt, { protocolVersion: 5, topicPrefix: 'guardian', reconnect: { initialMs: 500, maxMs: 30000 }, queue: { maxInFlight: 100 } });
  t.match(config.outbox, { store: 'sqlite', maxBytes: 268435456, maxAgeMs: 604800000, commitIntervalMs: 0, synchronous: 'normal' });
});

t.test('a device byte/word order is inherited by its points unless they set their own', async (t) => {
  const d = base();
  Object.assign(device(d, 0), { byteOrder: 'little', wordOrder: 'little' });
  (device(d, 0)['points'] as Doc[]).push({ name: 'own', table: 'holding', address: 4, type: 'int32', wordOrder: 'big' });
  const points = parseConfig(stringify(d)).buses[0]?.devices[0]?.points;
  t.match(points?.[0], { byteOrder: 'little', wordOrder: 'little' });
  t.match(points?.[1], { byteOrder: 'little', wordOrder: 'big' });
});

t.test('YAML syntax errors name the line', async (t) => {
  const err = t.throws(() => parseConfig('version: 1\ngateway: [unclosed\n')) as ConfigError;
  t.equal(err.code, 'GUARDIAN_E_CONFIG_PARSE');
  t.match(err.problems[0], /^line \d+, column \d+: /);
  const dup = t.throws(() => parseConfig('version: 1\nversion: 1\n')) as ConfigError;
  t.match(dup.problems[0], /^line 2, column 1: key 'version' appears twice \(lines 1 and 2\)/);
});

t.test('bad configs: each gives exactly its error lines', async (t) => {
  for (const c of cases) {
    const doc = base();
    c.mutate(doc);
    const err = t.throws(() => parseConfig(stringify(doc)), c.name) as ConfigError;
    t.equal(err.code, 'GUARDIAN_E_CONFIG_INVALID', c.name);
    t.same(err.problems.map(unplaced).sort(), [...c.expect].sort(), c.name);
    t.ok(err.problems.every((p) => /^line \d+, column \d+: /.test(p)), `${c.name}: every problem has its line`);
  }
});

t.test('guardian check-config prints every problem and exits non-zero', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'guardian-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  // check-config checks the files the config names too (test/cli/config-promise.test.ts): a real manifest and state directory
  const goodDoc = { ...base(), gateway: { id: 'gw1', stateDir: join(dir, 'state') }, firewall: { manifest: join(dir, 'app_manifest.json') } };
  writeFileSync(good, stringify(goodDoc));
  writeFileSync(join(dir, 'app_manifest.json'), JSON.stringify(manifestFor(parseConfig(stringify(goodDoc), good))));
  const ok = await runCli(['check-config', good]);
  t.equal(ok.code, 0);
  t.equal(ok.stdout, `${good}: OK (2 buses, 2 devices, 2 points)\n`);
  // Run the CLI on every bad config, a few processes at a time.
  const results: { c: (typeof cases)[number]; file: string; res: Awaited<ReturnType<typeof runCli>> }[] = [];
  for (let i = 0; i < cases.length; i += 6) {
    results.push(...await Promise.all(cases.slice(i, i + 6).map(async (c, j) => {
      const doc = base();
      c.mutate(doc);
      const file = join(dir, `bad-${i + j}.yaml`);
      writeFileSync(file, stringify(doc));
      return { c, file, res: await runCli(['check-config', file]) };
    })));
  }
  for (const { c, file, res } of results) {
    t.equal(res.code, 1, `${c.name}: exit code`);
    const lines = res.stderr.trimEnd().split('\n');
    t.equal(lines[0], `guardian: GUARDIAN_E_CONFIG_INVALID: ${file} has ${c.expect.length} problem${c.expect.length === 1 ? '' : 's'}:`, c.name);
    t.same(lines.slice(1).map(unplaced).sort(), [...c.expect].sort(), `${c.name}: error lines`);
  }
  const missing = await runCli(['check-config', join(dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^guardian: GUARDIAN_E_CONFIG_READ: cannot read config .*nope\.yaml/);
});
