// The single-value config rules (src/config/semantic-values.ts) over many inputs, and the
// rules that look at the machine (two serial ports that are one device).
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfig, SCHEMA_URL, type ConfigError } from '../../src/config/load.js';
import { BAUD_RATES } from '../../src/config/semantic.js';
import { filePathProblem, modbusHostProblem, serialPortProblem } from '../../src/config/semantic-values.js';
import { hostProblem } from '../../src/core/endpoint.js';
import { parseManifest } from '../../src/firewall/manifest.js';
import { tmpDir } from '../fixtures/ports.js';

const seed = Number.parseInt(process.env['FC_SEED'] ?? String(Date.now() % 1_000_000), 10);
const runs = { seed, numRuns: 300 };
const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = (first: fc.Arbitrary<number>): fc.Arbitrary<string> => fc.tuple(first, octet, octet, octet).map((o) => o.join('.'));

t.test('the t3.5 rule knows exactly the baud rates the schema accepts', async (t) => {
  const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as { definitions: Record<string, { properties?: Record<string, { enum?: number[] }> }> };
  const rates = Object.values(schema.definitions).flatMap((d) => d.properties?.['baudRate']?.enum ?? []);
  t.same([...BAUD_RATES].sort((a, b) => a - b), [...rates].sort((a, b) => a - b));
});

t.test('Modbus hosts: multicast, unspecified and broadcast refused, every other address as hostProblem says', async (t) => {
  t.doesNotThrow(() => { fc.assert(fc.property(ipv4(fc.integer({ min: 224, max: 239 })), (h) => /is a multicast address \(224\.0\.0\.0\/4\)/.test(modbusHostProblem(h) ?? '')), runs); }, `multicast, seed ${seed}`);
  t.doesNotThrow(() => { fc.assert(fc.property(ipv4(fc.constant(0)), (h) => /is the unspecified address/.test(modbusHostProblem(h) ?? '')), runs); }, `0.0.0.0/8, seed ${seed}`);
  const unicast = ipv4(fc.integer({ min: 1, max: 223 }));
  t.doesNotThrow(() => { fc.assert(fc.property(unicast, (h) => modbusHostProblem(h) === hostProblem(h)), runs); }, `unicast, seed ${seed}`);
  t.match(modbusHostProblem('255.255.255.255'), /is the broadcast address/);
  t.match(modbusHostProblem('ff05::1:3'), /multicast address \(ff00::\/8\)/);
  t.match(modbusHostProblem('::'), /unspecified address \(::\)/);
  t.equal(modbusHostProblem('fd00::1'), undefined);
  t.equal(modbusHostProblem('plc-1.example'), undefined);
});

t.test('file paths: absolute, or a reason; never a relative path, ~ or $VAR accepted', async (t) => {
  const segment = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/);
  const absolute = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => `/${s.join('/')}`);
  t.doesNotThrow(() => { fc.assert(fc.property(absolute, (p) => filePathProblem(p) === undefined), runs); }, `absolute, seed ${seed}`);
  const relative = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));
  t.doesNotThrow(() => { fc.assert(fc.property(relative, (p) => /must be an absolute path/.test(filePathProblem(p) ?? '')), runs); }, `relative, seed ${seed}`);
  t.doesNotThrow(() => { fc.assert(fc.property(relative, (p) => /'~' is not expanded/.test(filePathProblem(`~/${p}`) ?? '')), runs); }, `~, seed ${seed}`);
  const variable = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/);
  t.doesNotThrow(() => { fc.assert(fc.property(absolute, variable, (p, v) => (filePathProblem(`${p}/$${v}/x`) ?? '').startsWith(`'$${v}' is not expanded`)), runs); }, `$VAR, seed ${seed}`);
});

t.test('serial ports: a bare or relative name gets the /dev path to write', async (t) => {
  const name = fc.stringMatching(/^tty[A-Za-z]{1,4}[0-9]{1,2}$/);
  t.doesNotThrow(() => { fc.assert(fc.property(name, (n) => serialPortProblem(n) === `must be the absolute serial device path: write '/dev/${n}' (got '${n}')`
    && serialPortProblem(`dev/${n}`) === `must be the absolute serial device path: write '/dev/${n}' (got 'dev/${n}')`
    && serialPortProblem(`/dev/${n}`) === undefined), runs); }, `seed ${seed}`);
});

t.test('two rtu buses on one device through a symlink (like /dev/serial/by-id/…) are refused', async (t) => {
  const dir = await tmpDir(t);
  const device = path.join(dir, 'ttyFAKE0');
  writeFileSync(device, '');
  mkdirSync(path.join(dir, 'by-id'));
  const link = path.join(dir, 'by-id', 'usb-FTDI_1234-if00-port0');
  symlinkSync(device, link);
  const rtu = (name: string, port: string, unitId: number): object => ({
    name, type: 'rtu', port, devices: [{ name: `${name}-d`, unitId, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }],
  });
  const doc = { version: 1, gateway: { id: 'gw' }, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } }, buses: [rtu('a', device, 1), rtu('b', link, 2)] };
  const err = t.throws(() => parseConfig(stringify(doc), 'c.yaml')) as ConfigError;
  t.equal(err.code, 'GUARDIAN_E_CONFIG_INVALID');
  t.match(err.problems, [new RegExp(`^line \\d+, column \\d+: buses\\[1\\]\\.port: '${link.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' \\(${device.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) is also the port of buses\\[0\\]: one serial line is one bus`)]);
  t.equal(err.problems.length, 1);
  const apart = { ...doc, buses: [rtu('a', device, 1), rtu('b', path.join(dir, 'ttyFAKE1'), 2)] };
  t.doesNotThrow(() => parseConfig(stringify(apart), 'c.yaml'), 'two different ports are fine');
});

t.test('manifest: a non-ASCII write policy device name is one problem; a relative Uart gets the right /dev hint', async (t) => {
  const manifest = (devices: object, uart: string): string => JSON.stringify({
    SchemaVersion: 1, Name: 'x', ComponentId: '1c6d7c4e-9a58-4e0b-9b7b-2f0d6f3c6c11', Capabilities: { Uart: [uart] }, Guardian: { WritePolicy: { Devices: devices } },
  }, null, 2);
  const err = t.throws(() => parseManifest(manifest({ 'Kessel-Ä': { Allow: [] } }, '/dev/ttyS0'))) as unknown as { problems: string[] };
  t.equal(err.problems.length, 1, err.problems.join('\n'));
  t.match(err.problems[0], /Guardian\.WritePolicy\.Devices: must be 1-64 letters.*\(got 'Kessel-Ä'\)/);
  const { warnings } = parseManifest(manifest({}, 'dev/ttyUSB0'));
  t.match(warnings, [/write "\/dev\/ttyUSB0"/]);
  t.notMatch(warnings.join('\n'), /\/dev\/dev\//);
});
