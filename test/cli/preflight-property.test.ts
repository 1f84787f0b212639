// The promise as a property (fast-check): for variants of the shipped configs
// (config/example.yaml, the demo's config/demo.guardian.yaml.tmpl) with values the schema accepts, real
// files, a real broker (Mosquitto, plain and TLS) and a real Modbus device
// (pymodbus): when `check-config` accepts the config, `run` reaches "guardian
// running"; when it refuses it, `run` refuses it too, with the same first line.
// A failure prints the seed; rerun with FC_SEED=<seed>.
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import type { Test } from 'tap';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { manifestFor } from '../../src/firewall/config-coverage.js';
import { childEnv, GUARDIAN_BIN, runCli, withPreloadOptOut } from '../fixtures/cli.js';
import { startMosquitto } from '../fixtures/mosquitto.js';
import { makePki, signCsr, type Pki } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

const SEED = Number(process.env['FC_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const NUM_RUNS = Number(process.env['FC_RUNS'] ?? 14);

type Doc = Record<string, unknown>;

interface Variant {
  readonly base: 'example' | 'demo';
  readonly logLevel: 'info' | 'debug' | 'trace';
  readonly outbox: { store: 'sqlite' | 'memory'; synchronous: 'normal' | 'full'; policy: 'drop-oldest' | 'stop-polling'; commitIntervalMs: number };
  readonly healthMs: number;
  readonly mqtt: { protocolVersion: 4 | 5; topicPrefix: string; keepaliveS: number };
  readonly auth: 'none' | 'tls-ca' | 'tls-files' | 'identity';
  readonly stateDir: 'missing' | 'private' | 'group-readable' | 'world-writable' | 'a file';
  readonly manifest: 'generated' | 'missing' | 'without the broker';
  readonly caMissing: boolean;
  readonly serialBus: boolean;
}

const variantArb: fc.Arbitrary<Variant> = fc.record({
  base: fc.constantFrom('example', 'demo'),
  // "guardian running" is an info line: the levels that print it
  logLevel: fc.constantFrom('info', 'debug', 'trace'),
  // the memory store always drops the oldest (semantic rule: stop-polling needs sqlite)
  outbox: fc.record({
    store: fc.constantFrom('sqlite', 'memory'), synchronous: fc.constantFrom('normal', 'full'),
    policy: fc.constantFrom('drop-oldest', 'stop-polling'), commitIntervalMs: fc.integer({ min: 0, max: 50 }),
  }).map((o) => (o.store === 'memory' ? { ...o, policy: 'drop-oldest' as const } : o)),
  healthMs: fc.oneof(fc.constant(0), fc.integer({ min: 1000, max: 60000 })),
  mqtt: fc.record({ protocolVersion: fc.constantFrom(4, 5), topicPrefix: fc.constantFrom('guardian', 'plant/line3', 'g'), keepaliveS: fc.integer({ min: 5, max: 120 }) }),
  auth: fc.constantFrom('none', 'tls-ca', 'tls-files', 'identity'),
  // the accepted kinds weigh more: most runs should start
  stateDir: fc.oneof({ arbitrary: fc.constantFrom('missing', 'private', 'group-readable'), weight: 4 }, { arbitrary: fc.constantFrom('world-writable', 'a file'), weight: 1 }),
  manifest: fc.oneof({ arbitrary: fc.constant('generated'), weight: 5 }, { arbitrary: fc.constantFrom('missing', 'without the broker'), weight: 1 }),
  caMissing: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
  serialBus: fc.boolean(),
});

interface Peers {
  readonly pki: Pki;
  readonly plainUrl: string;
  readonly tlsPort: number;
  readonly modbusPort: number;
  /** A provisioned simulated-Pluton state directory (identity + TLS certificate). */
  readonly identityState: string;
}

async function peers(t: Test): Promise<Peers> {
  const pki = await makePki(await tmpDir(t, 'guardian-pki-'));
  const plain = await startMosquitto(t);
  const tls = await startMosquitto(t, { tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: Array.from({ length: 32 }, (_, i) => i) }, input: { 0: [1, 2, 3, 4, 5, 6] }, coils: { 0: [true] }, discrete: { 0: [false] } } } });
  const dir = await tmpDir(t, 'guardian-golden-');
  const config = path.join(dir, 'identity.yaml');
  writeFileSync(config, stringify({ version: 1, gateway: { id: 'gw-prop', stateDir: path.join(dir, 'state') }, identity: { backend: 'pluton-sim' }, upstream: { mqtt: { url: plain.url } }, buses: [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }] }));
  if ((await runCli(['identity', 'init', '--config', config])).code !== 0) throw new Error('identity init failed');
  const csr = await runCli(['identity', 'csr', '--key', 'tls', '--subject', 'CN=gw-prop', '--config', config]);
  writeFileSync(path.join(dir, 'tls.crt'), await signCsr(pki, csr.stdout));
  if ((await runCli(['identity', 'install-cert', path.join(dir, 'tls.crt'), '--config', config])).code !== 0) throw new Error('install-cert failed');
  return { pki, plainUrl: plain.url, tlsPort: tls.port, modbusPort: modbus.port, identityState: path.join(dir, 'state') };
}

/** The shipped config, its placeholders filled (demo) and its buses pointed at the test's device. */
function baseDoc(v: Variant, p: Peers): Doc {
  const text = readFileSync(v.base === 'demo' ? 'config/demo.guardian.yaml.tmpl' : `config/${v.base}.yaml`, 'utf8')
    .replaceAll('${STATE_DIR}', '/unused').replaceAll('${BROKER_PORT}', '1883').replaceAll('${SIM_PORT}', String(p.modbusPort)).replaceAll('${MANIFEST}', '/unused');
  const doc = parse(text) as Doc;
  const buses = doc['buses'] as Doc[];
  const tcp = buses.find((b) => b['type'] === 'tcp')!;
  tcp['host'] = '127.0.0.1';
  tcp['port'] = p.modbusPort;
  const serial = buses.find((b) => b['type'] === 'rtu');
  doc['buses'] = v.serialBus && serial !== undefined ? [tcp, { ...serial, port: '/dev/ttyGuardianProp0' }] : [tcp];
  return doc;
}

function upstreamOf(v: Variant, p: Peers, dir: string): Doc {
  const tls = `mqtts://127.0.0.1:${p.tlsPort}`;
  const ca = v.caMissing ? path.join(dir, 'no-ca.pem') : path.join(dir, 'ca.pem');
  const base = { ...v.mqtt, reconnect: { initialMs: 200, maxMs: 2000 } };
  switch (v.auth) {
    case 'none': return { ...base, url: p.plainUrl };
    case 'tls-ca': return { ...base, url: tls, tls: { ca, servername: 'localhost' } };
    case 'tls-files': return { ...base, url: tls, tls: { ca, cert: path.join(dir, 'client.pem'), key: path.join(dir, 'client.key'), servername: 'localhost' } };
    case 'identity': return { ...base, url: tls, tls: { ca, identity: true, servername: 'localhost' } };
  }
}

/** Writes the variant's files and config; returns the config file. */
function materialise(v: Variant, p: Peers, dir: string): string {
  for (const [name, from] of [['ca.pem', p.pki.caCert], ['client.pem', p.pki.clientCert], ['client.key', p.pki.clientKey]] as const) cpSync(from, path.join(dir, name));
  const stateDir = path.join(dir, 'state');
  if (v.auth === 'identity') cpSync(p.identityState, stateDir, { recursive: true });
  else if (v.stateDir !== 'missing' && v.stateDir !== 'a file') mkdirSync(stateDir);
  if (v.stateDir === 'a file') writeFileSync(path.join(dir, 'state-file'), '');
  const modes = { 'private': 0o700, 'group-readable': 0o750, 'world-writable': 0o777 } as const;
  if (v.stateDir in modes) chmodSync(stateDir, modes[v.stateDir as keyof typeof modes]);
  const doc = baseDoc(v, p);
  const manifest = path.join(dir, 'app_manifest.json');
  doc['gateway'] = { ...(doc['gateway'] as Doc), stateDir: v.stateDir === 'a file' ? path.join(dir, 'state-file') : stateDir, logLevel: v.logLevel };
  doc['outbox'] = { ...(doc['outbox'] as Doc | undefined), ...v.outbox };
  doc['health'] = { intervalMs: v.healthMs };
  doc['identity'] = { backend: 'pluton-sim' };
  doc['firewall'] = { manifest };
  doc['upstream'] = { mqtt: upstreamOf(v, p, dir) };
  const file = path.join(dir, 'guardian.yaml');
  writeFileSync(file, stringify(doc));
  const generated = manifestFor(parseConfig(stringify(doc), file));
  if (v.manifest === 'generated') writeFileSync(manifest, JSON.stringify(generated));
  if (v.manifest === 'without the broker') {
    const caps = generated['Capabilities'] as { AllowedConnections: string[] };
    writeFileSync(manifest, JSON.stringify({ ...generated, Capabilities: { ...caps, AllowedConnections: caps.AllowedConnections.slice(1) } }));
  }
  return file;
}

/** `guardian run` until "guardian running" (then killed) or its exit. */
function runUntilRunning(file: string): Promise<{ running: true } | { running: false; code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [GUARDIAN_BIN, ...withPreloadOptOut(['run', '--config', file])], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  return new Promise((resolve, reject) => {
    let out = '';
    let stderr = '';
    let running = false;
    // a hang guard, not a timing assertion: a run that neither starts nor exits is a failure
    const hang = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`run neither started nor exited; stdout: ${out.slice(-2000)}`)); }, 60000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!running && out.includes('"msg":"guardian running"')) {
        running = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => {
      clearTimeout(hang);
      resolve(running ? { running: true } : { running: false, code, stderr });
    });
  });
}

t.test('any config check-config accepts makes run reach "guardian running"; any it refuses, run refuses alike', async (t) => {
  t.comment(`fast-check seed ${SEED} (rerun with FC_SEED=${SEED})`);
  const p = await peers(t);
  const seen = { accepted: 0, refused: 0 };
  try {
    await fc.assert(fc.asyncProperty(variantArb, async (v) => {
      const dir = await tmpDir(t, 'guardian-prop-');
      const file = materialise(v, p, dir);
      const check = await runCli(['check-config', file]);
      const started = Date.now();
      const run = await runUntilRunning(file);
      if (process.env['PROP_DEBUG'] !== undefined) t.comment(`${JSON.stringify(v)} check ${check.code} run ${JSON.stringify(run).slice(0, 200)} ${Date.now() - started} ms`);
      if (check.code === 0) {
        seen.accepted += 1;
        if (!run.running) throw new Error(`check-config said OK but run did not start (exit ${run.code}): ${run.stderr}\nvariant ${JSON.stringify(v)}`);
        return;
      }
      seen.refused += 1;
      if (check.code !== 1) throw new Error(`check-config exit ${check.code}: ${check.stderr}`);
      if (run.running) throw new Error(`check-config refused (${check.stderr.split('\n')[0]}) but run started`);
      if (run.code !== 1 || run.stderr.split('\n')[0] !== check.stderr.split('\n')[0]) {
        throw new Error(`run (exit ${run.code}) said ${run.stderr.split('\n')[0]}; check-config said ${check.stderr.split('\n')[0]}`);
      }
    }), { seed: SEED, numRuns: NUM_RUNS, endOnFailure: true });
    t.pass(`the promise holds (${seen.accepted} accepted and started, ${seen.refused} refused alike)`);
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `\n${err.cause.message}` : '';
    t.fail(`seed ${SEED}: ${err instanceof Error ? err.message : String(err)}${cause}`);
  }
});
