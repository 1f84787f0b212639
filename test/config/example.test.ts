// config/example.yaml shows every option the schema has, and it checks; the demo's templates are
// not configs (named .tmpl), and what the demo makes of them checks.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { demoConfigText, demoManifestText } from '../../src/cli/demo/demo.js';
import { runCli } from '../fixtures/cli.js';

type Schema = { properties?: Record<string, Schema>; items?: Schema; $ref?: string };
const SCHEMA = JSON.parse(readFileSync('config/guardian.schema.json', 'utf8')) as Schema & { definitions: Record<string, Schema> };
const EXAMPLE = 'config/example.yaml';

/** Options that exclude the ones in use: they appear as `# key:` comments instead. */
const ALTERNATIVES = new Set(['upstream.mqtt.username', 'upstream.mqtt.tls.cert', 'upstream.mqtt.tls.key', 'upstream.mqtt.sas',
  'upstream.mqtt.sas.resourceUri', 'upstream.mqtt.sas.keyName', 'upstream.mqtt.sas.ttlS', 'upstream.mqtt.sas.renewBeforeS']);

const resolve = (s: Schema): Schema => (s.$ref === undefined ? s : SCHEMA.definitions[s.$ref.replace('#/definitions/', '')] ?? s);

/** Every property path of the schema: `buses[].devices[].points[].bit`. */
function schemaPaths(s: Schema, base = ''): string[] {
  const r = resolve(s);
  if (r.items !== undefined) return schemaPaths(r.items, `${base}[]`);
  return Object.entries(r.properties ?? {}).flatMap(([k, sub]) => {
    const p = base === '' ? k : `${base}.${k}`;
    return [p, ...schemaPaths(sub, p)];
  });
}

/** Is the path set anywhere in the document (any bus, device or point)? */
function present(doc: unknown, parts: readonly string[]): boolean {
  const [head, ...rest] = parts;
  if (head === undefined) return true;
  if (head === '[]') return Array.isArray(doc) && doc.some((d) => present(d, rest));
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) && head in doc && present((doc as Record<string, unknown>)[head], rest);
}

t.test('config/example.yaml sets every option of the schema (or shows it commented, where it excludes one in use)', async (t) => {
  const text = readFileSync(EXAMPLE, 'utf8');
  t.doesNotThrow(() => parseConfig(text, EXAMPLE), 'the loader accepts it');
  const doc = parse(text) as unknown;
  const paths = schemaPaths(SCHEMA);
  t.ok(paths.length > 80, `the walk found the schema's options (${paths.length})`);
  for (const p of paths) {
    const parts = p.replace(/\[\]/g, '.[]').split('.');
    if (ALTERNATIVES.has(p)) {
      const key = parts[parts.length - 1] ?? '';
      t.match(text, new RegExp(`^\\s*#\\s*${key}:`, 'm'), `${p}: shown as a commented alternative`);
      t.notOk(present(doc, parts), `${p}: an alternative, not set`);
    } else {
      t.ok(present(doc, parts), `${p} is in the example`);
    }
  }
});

t.test('guardian check-config on the example reports nothing but the target system\'s own files', async (t) => {
  const res = await runCli(['check-config', EXAMPLE]);
  if (res.code === 0) {
    t.match(res.stdout, /^config\/example\.yaml: OK \(2 buses, 2 devices, 8 points\)/);
    return;
  }
  t.equal(res.code, 1, res.stderr);
  const problems = res.stderr.trimEnd().split('\n').filter((l) => !/^guardian: GUARDIAN_E_/.test(l) && !/^\s/.test(l));
  t.ok(problems.length > 0, res.stderr);
  for (const p of problems) t.match(p, /\/etc\/guardian\/|\/var\/lib\/guardian/, `only the files under /etc/guardian or the state directory: ${p}`);
  t.notMatch(res.stderr, /GUARDIAN_E_INTERNAL|    at /, 'no internal error, no stack');
});

t.test('the demo templates are not configs: no *.yaml in config/ but the example; what the demo fills in checks', async (t) => {
  const yamlFiles = readdirSync('config').filter((f) => /\.ya?ml$/i.test(f));
  t.same(yamlFiles, ['example.yaml'], 'the only YAML config in config/ is the example');
  const template = await runCli(['check-config', 'config/demo.guardian.yaml.tmpl']);
  t.equal(template.code, 1, 'the template itself does not pass');
  t.match(template.stderr, /gateway\.stateDir: '\$\{STATE_DIR\}' is not expanded: Guardian does not substitute environment variables/, 'and says why');
  const dir = mkdtempSync(path.join(tmpdir(), 'guardian-demo-config-'));
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); });
  const ports = { broker: 18830, simulator: 15020 };
  const config = path.join(dir, 'guardian.yaml');
  writeFileSync(config, demoConfigText(ports, dir));
  writeFileSync(path.join(dir, 'app_manifest.json'), demoManifestText(ports));
  const filled = await runCli(['check-config', config]);
  t.equal(filled.code, 0, filled.stderr);
  t.equal(filled.stdout, `${config}: OK (1 bus, 1 device, 9 points)\n`);
});

t.test('the README\'s check-config example is what the CLI prints', async (t) => {
  const readme = readFileSync('README.md', 'utf8');
  const m = /\$ cat bad\.yaml\n([\s\S]*?)\$ guardian check-config bad\.yaml\n([\s\S]*?)```/.exec(readme);
  t.ok(m, 'the README has the example');
  const dir = mkdtempSync(path.join(tmpdir(), 'guardian-readme-'));
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); });
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, m?.[1] ?? '');
  const res = await runCli(['check-config', file]);
  t.equal(res.code, 1);
  t.equal(res.stderr.replaceAll(file, 'bad.yaml'), m?.[2] ?? '');
});
