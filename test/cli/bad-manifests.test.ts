// Bad manifests through the real CLI: `check-manifest FILE`, `check-config` with a
// config naming it, and `run` on that config all exit 1 with the same code, source
// and lines (the line in the file where the parser can say), and run starts nothing.
// Warnings (exit 0): a bare Uart name, a write policy for a device the config lacks.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { runCli } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

const ID = '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f';
const doc = (caps: Record<string, unknown>, extra: Record<string, unknown> = {}): string => JSON.stringify({ SchemaVersion: 1, Name: 'g', ComponentId: ID, Capabilities: caps, ...extra }, null, 1);
const ok = { AllowedConnections: ['127.0.0.1:1883', '127.0.0.1:1502'] };
const policy = (allow: unknown[]): string => doc(ok, { Guardian: { WritePolicy: { Devices: { press: { Allow: allow } } } } });

interface Case {
  readonly name: string;
  /** The file's text; a directory when undefined. */
  readonly text: string | undefined;
  readonly code: string;
  /** Each problem line: exactly this text, or matching this pattern. */
  readonly lines: readonly (string | RegExp)[];
  /** What check-config and run say, when the preflight says it better than the manifest loader. */
  readonly configLines?: readonly string[];
}

const cases: Case[] = [
  { name: 'a trailing comma', text: '{\n  "SchemaVersion": 1,\n  "Name": "g",\n}\n', code: 'GUARDIAN_E_MANIFEST_PARSE', lines: ['line 4, column 1: not valid JSON: Expected double-quoted property name'] },
  { name: 'a missing comma', text: '{\n  "SchemaVersion": 1\n  "Name": "g"\n}\n', code: 'GUARDIAN_E_MANIFEST_PARSE', lines: ["line 3, column 3: not valid JSON: Expected ',' or '}' after property value"] },
  { name: 'an empty file', text: '', code: 'GUARDIAN_E_MANIFEST_PARSE', lines: ['(root): the file is empty: start from `guardian firewall init`'] },
  { name: 'YAML, not JSON', text: 'SchemaVersion: 1\nName: g\n', code: 'GUARDIAN_E_MANIFEST_PARSE', lines: ["line 1, column 1: not valid JSON: Unexpected token 'S'"] },
  { name: 'a duplicate key', text: '{\n "SchemaVersion": 1,\n "Name": "g",\n "Name": "h"\n}', code: 'GUARDIAN_E_MANIFEST_PARSE', lines: ["line 4, column 2: key 'Name' appears twice (lines 3 and 4): keep one"] },
  { name: 'an array', text: '[1,2]', code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ['(root): must be object (got [1,2])'] },
  { name: 'required keys missing, a wrong version', text: '{"SchemaVersion": 2}', code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ['Name: is required', 'ComponentId: is required', 'Capabilities: is required', 'SchemaVersion: must be 1 (got 2)'] },
  { name: 'a misspelt capability', text: doc({ AllowedConection: ['a'] }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["Capabilities.AllowedConection: unknown key (did you mean 'AllowedConnections'?)"] },
  { name: 'a ComponentId that is not a GUID', text: JSON.stringify({ SchemaVersion: 1, Name: 'g', ComponentId: 'my-app', Capabilities: ok }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["ComponentId: must be a GUID like 6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f (got 'my-app')"] },
  { name: 'a host with a space', text: doc({ AllowedConnections: ['bad host'] }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["Capabilities.AllowedConnections[0]: 'bad host' is not a host name, IP address or CIDR block"] },
  { name: 'a duplicate host', text: doc({ AllowedConnections: ['a.example', 'A.example'] }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["Capabilities.AllowedConnections[1]: duplicate of [0] ('A.example')"] },
  { name: 'a port out of range', text: doc({ AllowedConnections: ['broker.example:70000'] }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["Capabilities.AllowedConnections[0]: 'broker.example:70000' has a bad port 70000 (1-65535)"] },
  { name: 'a wildcard', text: doc({ AllowedConnections: ['*.example.com'] }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["Capabilities.AllowedConnections[0]: '*.example.com': wildcards are not allowed; list each host name"] },
  { name: 'a CIDR block with host bits', text: doc({ AllowedConnections: ['10.0.0.1/8'] }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["Capabilities.AllowedConnections[0]: '10.0.0.1/8' has host bits set (did you mean '10.0.0.0/8'?)"] },
  { name: 'a server port 0', text: doc({ AllowedTcpServerPorts: [0] }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ['Capabilities.AllowedTcpServerPorts[0]: must be a port 1-65535 (got 0)'] },
  { name: 'a Uart path with ..', text: doc({ Uart: ['/dev/../etc/shadow'] }), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["Capabilities.Uart[0]: must be a plain absolute device path like /dev/ttyUSB0 (got '/dev/../etc/shadow')"] },
  { name: 'a write rule on input registers', text: policy([{ Table: 'input', Addresses: 1 }]), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ["Guardian.WritePolicy.Devices.press.Allow[0].Table: must be one of 'coil', 'holding' (got 'input')"] },
  { name: 'a write rule with Min above Max', text: policy([{ Table: 'holding', Addresses: 1, Min: 5, Max: 1 }]), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ['Guardian.WritePolicy.Devices.press.Allow[0]: Min 5 is above Max 1'] },
  {
    name: 'overlapping write rules (with their lines)', text: policy([{ Table: 'holding', Addresses: [0, 200] }, { Table: 'holding', Addresses: [100, 101], Max: 5 }]), code: 'GUARDIAN_E_MANIFEST_INVALID',
    lines: ['Guardian.WritePolicy.Devices.press.Allow[1] (line 23): holding [100, 101] overlaps Guardian.WritePolicy.Devices.press.Allow[0] (line 16) holding [0, 200]; rules may not overlap (a write is judged by every rule it touches: split the ranges so each address has one rule)'],
  },
  { name: 'a directory', text: undefined, code: 'GUARDIAN_E_MANIFEST_READ', lines: ['(root): cannot read the file: not a regular file (a directory)'],
    configLines: ['firewall.manifest: <dir>/app_manifest.json: it is a directory, not a regular file'] },
  // the V8 text of a trailing comma in an array is multi-line ('…"a",]}\n"... is not valid JSON'): one line, with its position
  { name: 'a trailing comma in an array', text: '{\n "SchemaVersion": 1,\n "Capabilities": {"AllowedConnections": ["a",]}\n}\n', code: 'GUARDIAN_E_MANIFEST_PARSE', lines: ["line 3, column 46: not valid JSON: Unexpected token ']'"] },
  { name: 'only white space', text: '  \n\t\n', code: 'GUARDIAN_E_MANIFEST_PARSE', lines: ['(root): the file is empty: start from `guardian firewall init`'] },
  { name: 'a byte order mark is read past (the next problem shows)', text: `\uFEFF${doc({ AllowedTcpServerPorts: [0] })}`, code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ['Capabilities.AllowedTcpServerPorts[0]: must be a port 1-65535 (got 0)'] },
  { name: 'Max: 1e400 (not finite)', text: policy([{ Table: 'holding', Addresses: 1, Max: 5 }]).replace('"Max": 5', '"Max": 1e400'), code: 'GUARDIAN_E_MANIFEST_INVALID', lines: ['Guardian.WritePolicy.Devices.press.Allow[0].Max: must be a finite number (got .inf, or a number too large to hold)'] },
  { name: 'a key repeated deep inside', text: policy([{ Table: 'holding', Addresses: 1 }]).replace('"Addresses": 1', '"Addresses": 1,\n"Table": "coil"'), code: 'GUARDIAN_E_MANIFEST_PARSE', lines: [/line \d+, column 1: key 'Table' appears twice \(lines \d+ and \d+\): keep one/] },
  { name: 'a file over 1 MiB', text: `${doc(ok)}${' '.repeat(1024 * 1024)}`, code: 'GUARDIAN_E_MANIFEST_READ', lines: [/^\(root\): cannot read the file: the file is \d+ bytes, more than the 1048576 a config or manifest may have$/] },
];

function config(dir: string, manifest: string, devices = ['press']): string {
  const file = path.join(dir, 'guardian.yaml');
  writeFileSync(file, stringify({
    version: 1, gateway: { id: 'gw-m', stateDir: path.join(dir, 'state') }, firewall: { manifest },
    upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: 1502, devices: devices.map((name, i) => ({ name, unitId: i + 1, points: [{ name: 'p', table: 'holding', address: 0, type: 'uint16' }] })) }],
  }));
  return file;
}

t.test('bad manifests: check-manifest, check-config and run say the same, and nothing starts', async (t) => {
  t.ok(cases.length >= 15, `${cases.length} cases`);
  for (let i = 0; i < cases.length; i += 4) {
    await Promise.all(cases.slice(i, i + 4).map(async (c) => {
      const dir = await tmpDir(t, 'guardian-badm-');
      const manifest = path.join(dir, 'app_manifest.json');
      if (c.text === undefined) mkdirSync(manifest);
      else writeFileSync(manifest, c.text);
      const file = config(dir, manifest);
      const expect = (lines: readonly (string | RegExp)[], stderr: string): string => {
        const got = stderr.split('\n');
        // a pattern line is shown as the line it matched, so the comparison below is one exact text
        const want = lines.map((l, j) => (typeof l === 'string' ? l.replaceAll('<dir>', dir) : l.test(got[j + 1] ?? '') ? got[j + 1] ?? '' : `(a line matching ${String(l)})`));
        return [`guardian: ${c.code}: ${manifest} has ${lines.length} problem${lines.length === 1 ? '' : 's'}:`, ...want, ''].join('\n');
      };
      const [checkManifest, checkConfig, run] = await Promise.all([
        runCli(['check-manifest', manifest]), runCli(['check-config', file]), runCli(['run', '--config', file]),
      ]);
      for (const [command, res] of [['check-manifest', checkManifest], ['check-config', checkConfig], ['run', run]] as const) {
        t.equal(res.code, 1, `${c.name}: ${command} exits 1`);
        t.equal(res.stderr, expect(command === 'check-manifest' ? c.lines : c.configLines ?? c.lines, res.stderr), `${c.name}: ${command}: the code, the file and each line`);
      }
      t.notMatch(run.stdout, /guardian starting/, `${c.name}: run started nothing`);
      t.notOk(existsSync(path.join(dir, 'state')), `${c.name}: no state directory`);
    }));
  }
});

t.test('warnings: a bare Uart name, a write policy for a device the config does not have; exit stays 0', async (t) => {
  const dir = await tmpDir(t, 'guardian-warnm-');
  const manifest = path.join(dir, 'app_manifest.json');
  writeFileSync(manifest, doc({ ...ok, Uart: ['ttyUSB0'] }, { Guardian: { WritePolicy: { Devices: { pres: { Allow: [{ Table: 'holding', Addresses: 1 }] }, boiler: { Allow: [{ Table: 'coil', Addresses: 0 }] } } } } }));
  const file = config(dir, manifest, ['press', 'pump']);
  const res = await runCli(['check-config', file]);
  t.equal(res.code, 0, 'warnings do not fail the check');
  t.equal(res.stderr, [
    'warning: Capabilities.Uart[0]: \'ttyUSB0\' is read as an Azure Sphere peripheral name and allows no serial device on Linux; for a Linux serial device write "/dev/ttyUSB0" (or its /dev/serial/by-id/… path) instead',
    "warning: Guardian.WritePolicy.Devices.pres: the config has no device 'pres' (did you mean 'press'?); this policy allows nothing (the config's devices: press, pump)",
    "warning: Guardian.WritePolicy.Devices.boiler: the config has no device 'boiler'; this policy allows nothing (the config's devices: press, pump)",
    '',
  ].join('\n'));
  t.match(res.stdout, /: OK \(1 bus, 2 devices, 2 points\)\n$/);  const alone = await runCli(['check-manifest', manifest]);
  t.equal(alone.code, 0, 'check-manifest: the warning does not fail it either');
  t.equal(alone.stderr, `${res.stderr.split('\n')[0]}\n`, 'check-manifest prints the manifest\'s own warning (the bare Uart name); the write policies need the config');
});
