// identity commands log on stderr like run: pretty at a terminal, JSON lines in a pipe (issue 13,
// finding 15: `identity show` printed a raw JSON log line at a terminal).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { runCli } from '../fixtures/cli.js';
import { makePki } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';
import { guardianInPty } from '../fixtures/pty.js';

const BUSES = [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }];

t.test('identity show: a pretty warning at a terminal, a JSON line in a pipe', async (t) => {
  const dir = await tmpDir(t);
  const config = path.join(dir, `guardian-${randomBytes(3).toString('hex')}.yaml`);
  writeFileSync(config, stringify({ version: 1, gateway: { id: 'gw-tty', stateDir: path.join(dir, 'state') }, identity: { backend: 'pluton-sim' }, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } }, buses: BUSES }));
  const init = await runCli(['identity', 'init', '--config', config]);
  t.equal(init.code, 0, init.stderr);
  const piped = init.stderr.split('\n').filter((l) => /NOT hardware-backed/.test(l));
  t.equal(piped.length, 1, 'in a pipe: the warning once');
  t.match(JSON.parse(piped[0] ?? '{}') as Record<string, unknown>, { level: 'warn' }, 'as a JSON line');
  const show = guardianInPty(t, ['identity', 'show', '--config', config], { NO_COLOR: '1', TERM: 'xterm-256color', JOURNAL_STREAM: undefined });
  const line = await show.waitForLine(/NOT hardware-backed and are only as safe/);
  t.equal(await show.exited, 0, show.text());
  t.match(line, /WARN: key store: simulated Pluton \(software\); keys are NOT hardware-backed/, 'pretty');
  t.notMatch(show.text(), /"level"|\{"/, 'no JSON log line at a terminal');
  t.equal(show.text().split('\n').filter((l) => /NOT hardware-backed and are only/.test(l)).length, 1, 'the warning once');
});

t.test('run at a terminal with a damaged key store: the cause once (the guardian: line and its hint), no log line repeating it', async (t) => {
  const dir = await tmpDir(t);
  const pki = await makePki(dir);
  const config = path.join(dir, 'guardian.yaml');
  const doc = { version: 1, gateway: { id: 'gw-tty', stateDir: path.join(dir, 'state') }, identity: { backend: 'pluton-sim' }, upstream: { mqtt: { url: 'mqtts://127.0.0.1:8883', tls: { ca: pki.caCert, identity: true } } }, buses: BUSES, firewall: { manifest: path.join(dir, 'app_manifest.json') } };
  writeFileSync(config, stringify(doc));
  const manifest = await runCli(['firewall', 'init', config]);
  t.equal(manifest.code, 0, manifest.stderr);
  writeFileSync(path.join(dir, 'app_manifest.json'), manifest.stdout);
  const init = await runCli(['identity', 'init', '--config', config]);
  t.equal(init.code, 0, init.stderr);
  writeFileSync(path.join(dir, 'state', 'identity', 'store.json'), '{"format":', { mode: 0o600 });
  const run = guardianInPty(t, ['run', '--config', config], { NO_COLOR: '1', TERM: 'xterm-256color', JOURNAL_STREAM: undefined });
  await run.waitForLine(/^guardian: GUARDIAN_E_KEYSTORE_CORRUPT: /);
  t.equal(await run.exited, 1, run.text());
  const text = run.text();
  t.equal(text.split('GUARDIAN_E_KEYSTORE_CORRUPT').length - 1, 1, `the code once:\n${text}`);
  t.notMatch(text, /until its files change/, 'no claim about retrying: run stops');
});
