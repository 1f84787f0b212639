// Key store damage found while running: `guardian run` with the TLS client key from a
// real simulated-Pluton store (and a TPM on swtpm), connected through a link proxy to Mosquitto (TLS, client
// certificates). The key record is tampered with, the link cut: one error line, one
// failure report, one health alarm, and quiet retries at the longest backoff (debug
// only) — no log line per reconnect. Restoring the file clears the alarm, the link
// comes back, and the report and the alarm reach the broker.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { runCli } from '../fixtures/cli.js';
import { startGateway } from '../fixtures/gateway.js';
import type { LogLine } from '../fixtures/logs.js';
import { startMosquitto, subscribe } from '../fixtures/mosquitto.js';
import { makePki, signCsr } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';
import { startProxy } from '../fixtures/proxy.js';
import { startSwtpm } from '../fixtures/swtpm.js';

const BUSES = [{ name: 'b', type: 'tcp', host: '127.0.0.1', port: 1, devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }];
const QUIET = 'upstream credentials still refused by the key store';
const codeOf = (l: LogLine): unknown => (l['err'] as { code?: unknown } | undefined)?.code ?? l['code'];

/** The identity section for each backend: the simulated Pluton store, and a TPM (swtpm), whose key records are envelopes of their own. */
const backends: Record<string, (t: Test, dir: string) => Promise<Record<string, unknown>>> = {
  'pluton-sim': () => Promise.resolve({ backend: 'pluton-sim' }),
  tpm: async (t, dir) => ({ backend: 'tpm', tpm: { tcti: (await startSwtpm(t)).tcti, ownerAuthFile: path.join(dir, 'owner.auth') } }),
};

for (const [backend, identityOf] of Object.entries(backends)) t.test(`${backend}: a key store tampered with while running: one report, one alarm, no log flood; repaired, it connects again`, async (t) => {
  const dir = await tmpDir(t);
  const stateDir = path.join(dir, 'state');
  const identity = await identityOf(t, dir);
  const cliConfig = path.join(dir, 'identity.yaml');
  writeFileSync(cliConfig, stringify({ version: 1, gateway: { id: 'gw-rt', stateDir }, identity, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } }, buses: BUSES }));
  t.equal((await runCli(['identity', 'init', '--config', cliConfig])).code, 0, 'identity init');
  const csr = await runCli(['identity', 'csr', '--key', 'tls', '--subject', 'CN=gw-rt', '--config', cliConfig]);
  const pki = await makePki(await tmpDir(t, 'guardian-pki-'));
  writeFileSync(path.join(dir, 'tls.crt'), await signCsr(pki, csr.stdout));
  t.equal((await runCli(['identity', 'install-cert', path.join(dir, 'tls.crt'), '--config', cliConfig])).code, 0, 'install-cert');

  const broker = await startMosquitto(t, { tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
  const proxy = await startProxy(t, broker.port);
  const sub = await subscribe(t, broker.url, 'guardian/gw-rt/#', { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
  const gw = await startGateway(t, {
    version: 1,
    gateway: { id: 'gw-rt', stateDir, logLevel: 'debug' },
    health: { intervalMs: 0 }, // no periodic reports: the only health message is the alarm's
    identity,
    upstream: { mqtt: { url: `mqtts://127.0.0.1:${proxy.port}`, tls: { ca: pki.caCert, identity: true, servername: 'localhost' }, reconnect: { initialMs: 20, maxMs: 100 } } },
    buses: BUSES,
  });
  await gw.waitForLog((l) => l.msg === 'connected to broker');

  const keyFile = path.join(stateDir, 'identity', 'keys', 'tls.json');
  const original = readFileSync(keyFile);
  const record = JSON.parse(original.toString()) as { data: Record<string, string> };
  const c = record.data['ciphertext']!;
  record.data['ciphertext'] = (c[0] === 'A' ? 'B' : 'A') + c.slice(1);
  writeFileSync(keyFile, JSON.stringify(record, null, 2), { mode: 0o600 });
  proxy.down();

  const alarm = await gw.waitForLog((l) => codeOf(l) === 'GUARDIAN_E_KEYSTORE_CORRUPT' && l.level === 'error');
  t.match(alarm.msg, /the key store refuses the upstream credentials/);
  proxy.up(); // the link is back: only the key stands in the way
  const ATTEMPTS = 6;
  await gw.waitForLog(() => gw.lines.filter((l) => l.msg === QUIET).length >= ATTEMPTS);
  const loud = gw.lines.filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level)) && codeOf(l) === 'GUARDIAN_E_KEYSTORE_CORRUPT');
  t.equal(loud.length, 1, `one warning/error line over ${ATTEMPTS} refused attempts`);
  t.notOk(gw.lines.some((l) => l.msg === 'cannot get the upstream credentials from the key store; retrying'), 'no line per attempt');
  const reports = readdirSync(path.join(stateDir, 'failures')).filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(path.join(stateDir, 'failures', f), 'utf8')) as { kind: string; error: { code: string } });
  t.same(reports.filter((r) => r.kind === 'keystoreCorrupt').map((r) => r.error.code), ['GUARDIAN_E_KEYSTORE_CORRUPT'], 'one failure report');

  writeFileSync(keyFile, original, { mode: 0o600 }); // repaired (from backup)
  await gw.waitForLog((l) => l.msg === 'the key store gives the upstream credentials again; alarm cleared');
  const failure = JSON.parse((await sub.waitFor((m) => m.topic === 'guardian/gw-rt/failure')).payload.toString()) as { kind: string; error: { code: string } };
  t.match(failure, { kind: 'keystoreCorrupt', error: { code: 'GUARDIAN_E_KEYSTORE_CORRUPT' } }, 'the report reaches the broker');
  const health = JSON.parse((await sub.waitFor((m) => m.topic === 'guardian/gw-rt/health')).payload.toString()) as { identity: Record<string, unknown> };
  t.match(health.identity, { state: 'error', alarm: { code: 'GUARDIAN_E_KEYSTORE_CORRUPT', message: /tls\.json is damaged or was tampered with/, since: Number } }, 'the health alarm');
  t.equal(sub.messages.filter((m) => m.topic === 'guardian/gw-rt/health').length, 1, 'one health alarm');
  t.equal(sub.messages.filter((m) => m.topic === 'guardian/gw-rt/failure' && m.payload.toString().includes('keystoreCorrupt')).length, 1, 'one failure report sent');
});
