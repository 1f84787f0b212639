// The in-process guard, in fresh processes (test/fixtures/guard-child.ts): serial ports fail
// closed when the guard cannot wrap them (item 12), the serialport addon's own open is
// guarded, and references saved before the guard was installed still meet the native
// handle checks (item 11). Plus property tests of the pure parts: connect options are read
// once (item 5), TCTI arguments in every getopt form (item 10), preload flags (item 11).
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { copyConnectOptions, pinEnv, preloadFlags, spawnRefusal, tctiArguments } from '../../src/firewall/guard/index.js';
import { ptyPair } from '../fixtures/socat.js';

const CHILD = join(import.meta.dirname, '..', 'fixtures', 'guard-child.ts');

function scenario(t: Test, name: string, env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, name], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('error', reject);
    child.once('close', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || line === '') reject(new Error(`${name}: exit ${String(code)}; stderr: ${err}`));
      else resolve(JSON.parse(line) as Record<string, unknown>);
    });
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  });
}

void t.test('serial: an addon whose open cannot be wrapped is not loaded (fail closed, reported)', async (t) => {
  const r = await scenario(t, 'serial-frozen-addon');
  t.equal(r['importError'], 'GUARDIAN_E_FIREWALL_HOOK', 'loading serialport fails with the stable code');
  t.same(r['faults'], ['GUARDIAN_E_FIREWALL_HOOK'], 'and the fault was reported once');
});

void t.test('serial: serialport loaded before the guard and not wrappable stops the guard from installing', async (t) => {
  const r = await scenario(t, 'serial-frozen-binding');
  t.equal(r['installError'], 'GUARDIAN_E_FIREWALL_HOOK');
  t.same(r['faults'], ['GUARDIAN_E_FIREWALL_HOOK']);
});

void t.test('serial: the addon\'s own open is guarded — a Uart device opens, another pty does not', async (t) => {
  const allowed = await ptyPair(t);
  const other = await ptyPair(t);
  const r = await scenario(t, 'serial-guarded', { GUARD_ALLOWED_TTY: allowed.a, GUARD_OTHER_TTY: other.a });
  t.equal(r['other'], 'GUARDIAN_E_FIREWALL_DENIED', 'the pty outside Uart is refused');
  t.equal(r['allowed'], 'ok', 'the Uart pty opens');
  t.same(r['denials'], [{ kind: 'serial', target: other.a, layer: 'handle' }], 'refused at the addon, and reported');
});

void t.test('references saved before the guard was installed meet the native handle checks', async (t) => {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close(); });
  const port = (server.address() as { port: number }).port;
  const r = await scenario(t, 'saved-before-arming', { GUARD_LOOT_PORT: String(port) });
  t.equal(r['connect'], 'EACCES', 'a saved net.Socket.prototype.connect is refused');
  t.equal(r['lookup'], 'EACCES', 'a saved dns.lookup is refused');
  t.equal(r['raw'], -13, 'a saved tcp_wrap binding\'s connect returns EACCES');
  t.same(r['denials'], [
    { kind: 'connect', target: `127.0.0.1:${port}`, layer: 'handle' },
    { kind: 'lookup', target: 'secret.exfil.example', layer: 'handle' },
    { kind: 'connect', target: `127.0.0.1:${port}`, layer: 'handle' },
  ], 'each one reported');
  t.equal(sockets.length, 0, 'nothing connected');
});

const seedOf = (): number => Math.floor(Math.random() * 2 ** 31);

void t.test('property: connect options are read once; what is checked is what goes on', (t) => {
  const seed = seedOf();
  const value = fc.oneof(fc.string(), fc.integer({ min: -10, max: 70000 }), fc.constant(undefined), fc.constant(null), fc.boolean());
  fc.assert(fc.property(value, value, value, value, (host1, host2, port1, port2) => {
    const reads = { host: 0, port: 0 };
    const raw = {
      get host() { reads.host += 1; return reads.host === 1 ? host1 : host2; },
      get port() { reads.port += 1; return reads.port === 1 ? port1 : port2; },
    };
    const copy = copyConnectOptions(raw);
    if (reads.host !== 1 || reads.port !== 1) return false;
    if (!copy.ok) return true;
    const o = copy.options;
    // a fresh object of primitives with no prototype (nothing planted on Object.prototype reaches net), equal to the first answers
    return Object.getPrototypeOf(o) === null && o['port'] === copy.port && Number.isInteger(copy.port)
      && copy.port === Number(port1) && o['host'] === copy.host && (typeof host1 === 'string' && host1 !== '' ? copy.host === host1 : copy.host === 'localhost')
      && Object.values(o).every((v) => v === null || typeof v !== 'object');
  }), { seed, numRuns: 500 });
  t.pass(`seed ${seed}`);
  t.end();
});

void t.test('property: a TCTI in any getopt form is found and refused unless allowed', (t) => {
  const seed = seedOf();
  const trust = { workers: new Set<string>(), commands: new Set(['/usr/bin/tpm2_getcap']), tcti: new Set(['device:/dev/tpmrm0']), notifySocket: undefined, ownEnv: new Map<string, string>() };
  const benign = fc.array(fc.constantFrom('-c', 'ctx', '--hierarchy=o', '-g', 'sha256', 'properties-fixed', '-Q', '--quiet'), { maxLength: 6 });
  const evil = fc.stringMatching(/^(mssim|swtpm):host=[a-z0-9.]{1,12},port=\d{1,5}$/);
  const form = fc.constantFrom<(v: string) => string[]>((v) => [`--tcti=${v}`], (v) => ['--tcti', v], (v) => [`--tc=${v}`], (v) => ['-T', v], (v) => [`-T${v}`], (v) => [`-QT${v}`]);
  fc.assert(fc.property(benign, benign, evil, form, (before, after, tcti, inForm) => {
    const args = ['/usr/bin/tpm2_getcap', ...before, ...inForm(tcti), ...after];
    return tctiArguments(args.slice(1)).includes(tcti) && spawnRefusal(trust, args[0], args, []) !== undefined
      && spawnRefusal(trust, args[0], ['/usr/bin/tpm2_getcap', ...before, ...after], ['TPM2TOOLS_TCTI=device:/dev/tpmrm0']) === undefined;
  }), { seed, numRuns: 300 });
  t.pass(`seed ${seed}`);
  t.equal(spawnRefusal(trust, 'tpm2_getcap', ['tpm2_getcap'], []) !== undefined, true, 'a bare name is never trusted');
  t.same(pinEnv(['LD_PRELOAD=/tmp/e.so', 'TPM2TOOLS_TCTI=device:/dev/tpmrm0', 'NODE_OPTIONS=--require x', 'NOTIFY_SOCKET=/run/n']), { kept: ['TPM2TOOLS_TCTI=device:/dev/tpmrm0', 'NOTIFY_SOCKET=/run/n'], dropped: ['LD_PRELOAD', 'NODE_OPTIONS'] }, 'the environment is pinned: LD_PRELOAD and NODE_OPTIONS dropped');
  t.end();
});

void t.test('property: a preload flag anywhere in execArgv or NODE_OPTIONS is found', (t) => {
  const seed = seedOf();
  const harmless = fc.array(fc.constantFrom('--max-old-space-size=64', '--enable-source-maps', '--no-warnings', '--trace-warnings'), { maxLength: 4 });
  const flag = fc.constantFrom(['--import', 'x.mjs'], ['--import=x.mjs'], ['--require', 'x.cjs'], ['-r', 'x.cjs'], ['--loader', 'x.mjs'], ['--experimental-loader=x.mjs'], ['--inspect'], ['--inspect-brk=0'], ['--inspect-port=9230']);
  fc.assert(fc.property(harmless, harmless, flag, fc.boolean(), (a, b, f, viaEnv) => {
    const args = [...a, ...f, ...b];
    const found = viaEnv ? preloadFlags([], args.join(' ')) : preloadFlags(args, undefined);
    return found.length === 1 && preloadFlags([...a, ...b], [...a, ...b].join(' ')).length === 0;
  }), { seed, numRuns: 300 });
  t.pass(`seed ${seed}`);
  t.end();
});
