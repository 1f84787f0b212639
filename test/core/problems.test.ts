import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/error.js';
import { ErrorCodes, GuardianError, type ErrorCode } from '../../src/core/errors.js';
import { ProblemListError } from '../../src/core/problems.js';
import { FirewallConfigError, loadFirewall } from '../../src/firewall/config-coverage.js';
import { ManifestError, parseManifest } from '../../src/firewall/manifest.js';

const LIST_CODES: readonly ErrorCode[] = [
  'GUARDIAN_E_CONFIG_PARSE', 'GUARDIAN_E_CONFIG_INVALID',
  'GUARDIAN_E_MANIFEST_READ', 'GUARDIAN_E_MANIFEST_PARSE', 'GUARDIAN_E_MANIFEST_INVALID',
  'GUARDIAN_E_FIREWALL_CONFIG',
];

t.test('a problem list: the message is `<source>: <n> problem(s)` and then every line, in order', async (t) => {
  const seed = Number.parseInt(process.env['FC_SEED'] ?? String(Date.now() % 1_000_000), 10);
  const property = fc.property(
    fc.constantFrom(...LIST_CODES), fc.string({ minLength: 1 }), fc.array(fc.string(), { minLength: 1, maxLength: 20 }),
    (code, source, problems) => {
      const err = new ProblemListError(code, source, problems);
      const head = `${source}: ${problems.length} ${problems.length === 1 ? 'problem' : 'problems'}`;
      return err instanceof GuardianError && err.code === code && err.source === source
        && err.problems === problems && err.message === [head, ...problems].join('\n')
        && err.context['path'] === source && err.hint === ErrorCodes[code].hint
        && JSON.stringify(err.toJSON()) === JSON.stringify({ code, message: err.message, hint: err.hint, path: source });
    },
  );
  t.doesNotThrow(() => fc.assert(property, { seed, numRuns: 300 }), `seed ${seed} (rerun with FC_SEED=${seed})`);
});

t.test('the config, the manifest and the firewall coverage all throw a ProblemListError, told apart by code', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'guardian-problems-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const manifest = join(dir, 'app_manifest.json');
  const config = parseConfig(stringify({
    version: 1, gateway: { id: 'g', stateDir: join(dir, 'state') }, firewall: { manifest },
    upstream: { mqtt: { url: 'mqtt://broker.example.com' } },
    buses: [{ name: 'tcp', type: 'tcp', host: '10.1.2.3', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'holding', address: 0, type: 'uint16' }] }] }],
  }));
  writeFileSync(manifest, JSON.stringify({ SchemaVersion: 1, Name: 'g', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: { AllowedConnections: ['broker.example.com:1883'] } }));
  const thrown = [
    t.throws(() => parseConfig('version: 1\ngateway: [unclosed\n', 'a.yaml')),
    t.throws(() => parseConfig(stringify({ version: 1, gateway: { id: 'g', colour: 'red' }, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1' } }, buses: [] }), 'b.yaml')),
    t.throws(() => parseManifest('{"SchemaVersion": 1,', 'c.json')),
    t.throws(() => parseManifest('{"SchemaVersion": 1}', 'd.json')),
    t.throws(() => loadFirewall(config)),
  ];
  t.same(thrown.map((e) => (e instanceof ProblemListError ? [e.code, e.source] : e)), [
    ['GUARDIAN_E_CONFIG_PARSE', 'a.yaml'], ['GUARDIAN_E_CONFIG_INVALID', 'b.yaml'],
    ['GUARDIAN_E_MANIFEST_PARSE', 'c.json'], ['GUARDIAN_E_MANIFEST_INVALID', 'd.json'],
    ['GUARDIAN_E_FIREWALL_CONFIG', manifest],
  ], 'each is a ProblemListError with its own code and source');
  t.same(thrown.map((e) => [e instanceof ConfigError, e instanceof ManifestError, e instanceof FirewallConfigError]), [
    [true, false, false], [true, false, false], [false, true, false], [false, true, false], [false, false, true],
  ], 'the narrowed classes still tell the three apart');
  t.same((thrown[4] as ProblemListError).problems, ["buses[0]: 10.1.2.3:502 is not in the manifest's Capabilities.AllowedConnections — add \"10.1.2.3:502\""]);
});
