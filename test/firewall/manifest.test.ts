// The manifest: Azure Sphere app_manifest.json shapes parse; Guardian's key; every bad input has its exact error lines.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadManifest, ManifestError, parseEndpoint, parseManifest } from '../../src/firewall/manifest.js';
import { runCli } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'manifests');
const EXAMPLE = join(import.meta.dirname, '..', '..', 'config', 'app_manifest.example.json');

t.test('Azure Sphere sample manifest shapes parse; what Linux has no use for is listed as ignored', async (t) => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json'));
  t.ok(files.length >= 5);
  for (const file of files) {
    const m = loadManifest(join(FIXTURES, file));
    t.ok(m.name.length > 0, `${file} parses`);
  }
  const iot = loadManifest(join(FIXTURES, 'azure-iot.json'));
  t.same(iot.allowedConnections.map((e) => [e.kind, e.value, e.port]), [
    ['host', 'global.azure-devices-provisioning.net', undefined], ['host', 'contoso-hub.azure-devices.net', undefined],
  ]);
  t.same(iot.ignored, ['EntryPoint', 'CmdArgs', 'ApplicationType', 'Capabilities.DeviceAuthentication', 'Capabilities.Gpio', 'Capabilities.PowerControls']);
  const rt = loadManifest(join(FIXTURES, 'realtime-uart.json'));
  t.same(rt.uarts, [], 'an MT3620 peripheral name opens no serial device');
  t.ok(rt.ignored.includes("Capabilities.Uart[0] 'ISU0' (an Azure Sphere peripheral name)"));
  const pns = loadManifest(join(FIXTURES, 'private-network-services.json'));
  t.same([pns.tcpServerPorts, pns.udpServerPorts], [[11000], [53, 67]]);
  t.same(pns.allowedConnections, [], 'no AllowedConnections: nothing may be reached');
  t.equal(pns.writePolicy.size, 0, 'no Guardian key: no device may be written');
});

t.test("the example manifest: endpoints with ports, a CIDR block, IPv6, a serial device and Guardian's write policy", async (t) => {
  const m = loadManifest(EXAMPLE);
  t.same(m.allowedConnections.map((e) => ({ kind: e.kind, value: e.value, port: e.port, prefix: e.prefix })), [
    { kind: 'host', value: 'broker.plant.example', port: 8883, prefix: undefined },
    { kind: 'cidr', value: '10.20.0.0', port: undefined, prefix: 16 },
    { kind: 'ip', value: 'fd00:0000:0000:0000:0000:0000:0000:0010', port: 8883, prefix: undefined },
  ]);
  t.same(m.uarts, ['/dev/ttyUSB0']);
  t.same(m.writePolicy.get('press'), {
    allow: [{ table: 'holding', from: 100, to: 109, min: 0, max: 250, verify: true }, { table: 'coil', from: 3, to: 3, verify: true }],
    maxWritesPerMinute: 30,
  });
  t.ok(Object.isFrozen(m) && Object.isFrozen(m.allowedConnections), 'frozen');
});

t.test('AllowedConnections entries', async (t) => {
  const ok: [string, Record<string, unknown>][] = [
    ['Contoso.COM', { kind: 'host', value: 'contoso.com' }],
    ['contoso.com.', { kind: 'host', value: 'contoso.com' }],
    ['localhost', { kind: 'host', value: 'localhost' }],
    ['broker:1883', { kind: 'host', value: 'broker', port: 1883 }],
    ['192.0.2.7', { kind: 'ip', value: '192.0.2.7', family: 4 }],
    ['192.0.2.7:502', { kind: 'ip', value: '192.0.2.7', port: 502 }],
    ['2001:db8::1', { kind: 'ip', value: '2001:0db8:0000:0000:0000:0000:0000:0001', family: 6 }],
    ['[2001:db8::1]:8883', { kind: 'ip', port: 8883, family: 6 }],
    ['10.0.0.0/8', { kind: 'cidr', value: '10.0.0.0', prefix: 8, family: 4 }],
    ['0.0.0.0/0', { kind: 'cidr', value: '0.0.0.0', prefix: 0 }],
    ['2001:db8::/32', { kind: 'cidr', value: '2001:0db8:0000:0000:0000:0000:0000:0000', prefix: 32, family: 6 }],
  ];
  for (const [entry, want] of ok) t.match(parseEndpoint(entry), { ...want, source: entry }, entry);
  const bad: [string, string][] = [
    ['*.contoso.com', "'*.contoso.com': wildcards are not allowed; list each host name"],
    ['host:0', "'host:0' has a bad port 0 (1-65535)"],
    ['host:70000', "'host:70000' has a bad port 70000 (1-65535)"],
    ['host:http', "'host:http' has a bad port 'http' (a number 1-65535 after ':')"],
    ['10.0.0.1/8', "'10.0.0.1/8' has host bits set (did you mean '10.0.0.0/8'?)"],
    ['10.0.0.0/33', "'10.0.0.0/33' has a bad prefix length '33' (0-32)"],
    ['host.example/24', "'host.example/24' is not a CIDR block (an IP address, '/', a prefix length)"],
    ['999.1.1.1', "'999.1.1.1' is not a valid IPv4 address"],
    ['under_score.example', "'under_score.example' is not a host name, IP address or CIDR block"],
    ['-lead.example', "'-lead.example' is not a host name, IP address or CIDR block"],
    ['[not-v6]:1', "'[not-v6]:1' is not an IPv6 address in brackets"],
    ['https://contoso.com', "'https://contoso.com' has a bad port '//contoso.com' (a number 1-65535 after ':')"],
  ];
  for (const [entry, problem] of bad) t.equal(parseEndpoint(entry), problem, entry);
});

const base = (caps: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  SchemaVersion: 1, Name: 'g', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: caps, ...extra,
});

t.test('bad manifests: each with its exact error lines', async (t) => {
  const cases: [string, string, string, string[]][] = [
    ['a duplicate key', '{"SchemaVersion": 1, "Name": "a", "Name": "b"}', 'GUARDIAN_E_MANIFEST_PARSE', ["line 1, column 35: key 'Name' appears twice (lines 1 and 1): keep one"]],
    ['missing keys and a wrong version', JSON.stringify({ SchemaVersion: 2 }), 'GUARDIAN_E_MANIFEST_INVALID', [
      'Name: is required', 'ComponentId: is required', 'Capabilities: is required', 'SchemaVersion: must be 1 (got 2)',
    ]],
    ['an unknown capability with a hint', JSON.stringify(base({ AllowedConection: ['a'] })), 'GUARDIAN_E_MANIFEST_INVALID', [
      "Capabilities.AllowedConection: unknown key (did you mean 'AllowedConnections'?)",
    ]],
    ['an unknown top-level key', JSON.stringify(base({}, { Guardain: {} })), 'GUARDIAN_E_MANIFEST_INVALID', [
      "Guardain: unknown key (did you mean 'Guardian'?)",
    ]],
    ['a bad ComponentId', JSON.stringify({ ...base(), ComponentId: 'my-app' }), 'GUARDIAN_E_MANIFEST_INVALID', [
      "ComponentId: must be a GUID like 6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f (got 'my-app')",
    ]],
    ['hosts: malformed and duplicated', JSON.stringify(base({ AllowedConnections: ['a.example', 'bad host', 'A.example', 'a.example:1'] })), 'GUARDIAN_E_MANIFEST_INVALID', [
      "Capabilities.AllowedConnections[1]: 'bad host' is not a host name, IP address or CIDR block",
      "Capabilities.AllowedConnections[2]: duplicate of [0] ('A.example')",
    ]],
    ['ports: out of range, duplicated, not numbers', JSON.stringify(base({ AllowedTcpServerPorts: [0, 502, 502], AllowedUdpServerPorts: [70000, '53'] })), 'GUARDIAN_E_MANIFEST_INVALID', [
      "Capabilities.AllowedUdpServerPorts[1]: must be integer (got '53')",
    ]],
    ['ports: range and duplicates', JSON.stringify(base({ AllowedTcpServerPorts: [0, 502, 502], AllowedUdpServerPorts: [70000] })), 'GUARDIAN_E_MANIFEST_INVALID', [
      'Capabilities.AllowedTcpServerPorts[0]: must be a port 1-65535 (got 0)',
      'Capabilities.AllowedTcpServerPorts[2]: duplicate of [1] (502)',
      'Capabilities.AllowedUdpServerPorts[0]: must be a port 1-65535 (got 70000)',
    ]],
    ['serial devices', JSON.stringify(base({ Uart: ['/dev/ttyUSB0', '/dev/serial/', '/dev/../etc/shadow', '/dev/ttyUSB0'] })), 'GUARDIAN_E_MANIFEST_INVALID', [
      "Capabilities.Uart[1]: must be a plain absolute device path like /dev/ttyUSB0 (got '/dev/serial/')",
      "Capabilities.Uart[2]: must be a plain absolute device path like /dev/ttyUSB0 (got '/dev/../etc/shadow')",
      "Capabilities.Uart[3]: duplicate of [0] ('/dev/ttyUSB0')",
    ]],
    ['write policy: schema', JSON.stringify(base({}, { Guardian: { WritePolicy: { Devices: { press: { Allow: [{ Table: 'input', Addresses: 1 }, { Table: 'holding' }], Rate: 1 } } } } })), 'GUARDIAN_E_MANIFEST_INVALID', [
      'Guardian.WritePolicy.Devices.press.Rate: unknown key',
      "Guardian.WritePolicy.Devices.press.Allow[0].Table: must be one of 'coil', 'holding' (got 'input')",
      'Guardian.WritePolicy.Devices.press.Allow[1].Addresses: is required',
    ]],
    ['write policy: ranges and limits', JSON.stringify(base({}, { Guardian: { WritePolicy: { Devices: { press: { Allow: [
      { Table: 'holding', Addresses: [10, 5] }, { Table: 'holding', Addresses: [1, 2, 3] }, { Table: 'holding', Addresses: 70000 },
      { Table: 'coil', Addresses: 1, Max: 1 }, { Table: 'holding', Addresses: 1, Min: 5, Max: 1 },
    ] } } } } })), 'GUARDIAN_E_MANIFEST_INVALID', [
      'Guardian.WritePolicy.Devices.press.Allow[0].Addresses: first 10 is after last 5',
      'Guardian.WritePolicy.Devices.press.Allow[1].Addresses: must be one address or [first, last] (got [1,2,3])',
      'Guardian.WritePolicy.Devices.press.Allow[2].Addresses: addresses are integers 0-65535 (got 70000)',
      'Guardian.WritePolicy.Devices.press.Allow[3]: Min/Max do not apply to coils (they are on or off)',
      'Guardian.WritePolicy.Devices.press.Allow[4]: Min 5 is above Max 1',
    ]],
    ['write policy: overlapping rules (a broad rule would shadow a narrow one with limits)', JSON.stringify(base({}, { Guardian: { WritePolicy: { Devices: { press: { Allow: [
      { Table: 'holding', Addresses: [0, 200] }, { Table: 'coil', Addresses: [0, 200] }, { Table: 'holding', Addresses: [100, 101], Min: 0, Max: 5 },
      { Table: 'holding', Addresses: 200, Verify: false }, { Table: 'coil', Addresses: 201 },
    ] } } } } }), null, 1), 'GUARDIAN_E_MANIFEST_INVALID', [
      'Guardian.WritePolicy.Devices.press.Allow[2] (line 25): holding [100, 101] overlaps Guardian.WritePolicy.Devices.press.Allow[0] (line 11) holding [0, 200]; rules may not overlap (a write is judged by every rule it touches: split the ranges so each address has one rule)',
      'Guardian.WritePolicy.Devices.press.Allow[3] (line 34): holding 200 overlaps Guardian.WritePolicy.Devices.press.Allow[0] (line 11) holding [0, 200]; rules may not overlap (a write is judged by every rule it touches: split the ranges so each address has one rule)',
    ]],
  ];
  for (const [name, text, code, problems] of cases) {
    let err: unknown;
    try {
      parseManifest(text, 'm.json');
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ManifestError, `${name}: a ManifestError`);
    t.match(err, { code, problems }, `${name}: ${code}`);
    t.same((err as ManifestError).problems, problems, `${name}: exactly these lines`);
  }
});

t.test('not JSON: the line and column, on one line', async (t) => {
  for (const [text, where] of [['{"SchemaVersion": 1,', /^line 1, column 21: unexpected end of the file/], ['{"SchemaVersion": 1,\n  "Name": x}', /^line 2, column 11: not valid JSON: Unexpected token 'x'$/]] as const) {
    t.throws(() => parseManifest(text), { code: 'GUARDIAN_E_MANIFEST_PARSE', problems: [where] });
  }
});

t.test('guardian check-manifest: a summary, or every problem and exit 1', async (t) => {
  const ok = await runCli(['check-manifest', EXAMPLE]);
  t.equal(ok.code, 0);
  t.equal(ok.stdout, [
    `${EXAMPLE}: OK (guardian-plant-7, 6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f)`,
    '  outbound allowed to: broker.plant.example:8883, 10.20.0.0/16, [fd00::10]:8883',
    '  TCP server ports: none; UDP server ports: none',
    '  serial devices: /dev/ttyUSB0',
    '  writes allowed to: press',
    '',
  ].join('\n'));
  const file = join(await tmpDir(t), 'bad.json');
  writeFileSync(file, JSON.stringify(base({ AllowedConnections: ['*.example.com'], Uart: ['/dev/./ttyS0'] })));
  const bad = await runCli(['check-manifest', file]);
  t.equal(bad.code, 1);
  t.equal(bad.stderr, [
    `guardian: GUARDIAN_E_MANIFEST_INVALID: ${file} has 2 problems:`,
    "Capabilities.AllowedConnections[0]: '*.example.com': wildcards are not allowed; list each host name",
    "Capabilities.Uart[0]: must be a plain absolute device path like /dev/ttyUSB0 (got '/dev/./ttyS0')",
    '',
  ].join('\n'));
});

t.test('an unreadable manifest file', async (t) => {
  t.throws(() => loadManifest('/nonexistent/app_manifest.json'), { code: 'GUARDIAN_E_MANIFEST_READ' });
  t.ok(readFileSync(EXAMPLE, 'utf8').length > 0);
});
