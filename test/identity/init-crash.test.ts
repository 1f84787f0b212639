// `guardian identity init` killed (SIGKILL) right after each tpm2 call it makes,
// against a real swtpm: the next `init` completes, the keys work (sign + verify,
// unseal), no persistent handle is leaked and no transient object is left, and
// the owner authorization file is the one the TPM holds.
//
// The kill point is found without a test hook: the CLI logs one debug line per
// tpm2 call ("tpm2 call ended", synchronously to stderr) and the test kills the
// process when it reads the Nth one. The process may have started the next call
// by then; that call's tool runs to its end (an orphan), as after a real crash.
import { execFile, spawn } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { TpmKeyStore } from '../../src/identity/tpm/store.js';
import { childEnv, GUARDIAN_BIN, runCli } from '../fixtures/cli.js';
import { captureLogger } from '../fixtures/logs.js';
import { tmpDir } from '../fixtures/ports.js';
import { startSwtpm } from '../fixtures/swtpm.js';

const run = promisify(execFile);
const HANDLE_BASE = 0x81000a00;
const BUSES = [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }];

t.setTimeout(1_200_000);

interface Setup { dir: string; tcti: string; config: string; auth: string }

async function setup(t: Test): Promise<Setup> {
  const dir = await tmpDir(t);
  const tpm = await startSwtpm(t);
  const auth = path.join(dir, 'owner.auth');
  const config = path.join(dir, 'guardian.yaml');
  writeFileSync(config, stringify({
    version: 1, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } }, buses: BUSES,
    gateway: { id: 'gw-crash', stateDir: path.join(dir, 'state') },
    identity: { backend: 'tpm', tpm: { tcti: tpm.tcti, ownerAuthFile: auth, handleBase: HANDLE_BASE } },
  }));
  return { dir, tcti: tpm.tcti, config, auth };
}

/** Runs `identity init` and SIGKILLs it once it has logged `killAt` ended tpm2 calls; the calls it saw and whether it was killed. */
function initKilledAfter(config: string, killAt: number): Promise<{ calls: number; killed: boolean; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GUARDIAN_BIN, 'identity', 'init', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv({ GUARDIAN_LOG_LEVEL: 'debug' }) });
    let calls = 0;
    let killed = false;
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{') || (JSON.parse(line) as { msg?: string }).msg !== 'tpm2 call ended') continue;
        calls += 1;
        if (calls === killAt && !killed) {
          killed = child.kill('SIGKILL');
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (!killed && code !== 0) reject(new Error(`init failed (${String(code ?? signal)}):\n${stderr}`));
      else resolve({ calls, killed: killed && signal === 'SIGKILL', stderr });
    });
  });
}

async function tpmEnv(tcti: string, ...args: string[]): Promise<string> {
  return (await run('tpm2_getcap', args, { env: { ...process.env, TPM2TOOLS_TCTI: tcti } })).stdout;
}

/** The state after a completed init: the keys work, nothing leaked. */
async function checkProvisioned(t: Test, s: Setup): Promise<void> {
  const store = new TpmKeyStore({ dir: path.join(s.dir, 'state', 'identity'), tcti: s.tcti, ownerAuthFile: s.auth, handleBase: HANDLE_BASE, log: captureLogger().log });
  await store.open();
  try {
    t.same((await store.list()).map((k) => k.name), ['attest', 'identity', 'tls'], 'all three keys are recorded');
    const message = randomBytes(16);
    const signature = await store.sign('identity', createHash('sha256').update(message).digest());
    const pub = (await store.describe('identity'))!.publicKeyPem!;
    t.ok(verify('sha256', message, pub, signature), 'the identity key signs and the signature verifies');
    const tls = createPrivateKey({ key: await store.unseal('tls'), format: 'der', type: 'pkcs8' });
    t.equal(tls.asymmetricKeyType, 'ec', 'the TLS key unseals to a P-256 key');
    const quote = await store.attest(randomBytes(16), 'sha256:0');
    t.ok(verify('sha256', quote.message, createPublicKey(quote.akPublicPem), quote.signatureDer), 'the attestation key signs a quote that verifies');
  } finally {
    await store.close();
  }
  const persistent = (await tpmEnv(s.tcti, 'handles-persistent')).match(/0x[0-9a-f]{8}/gi) ?? [];
  t.equal(persistent.length, 3, `no persistent handle leaked: ${persistent.join(' ')}`);
  t.equal((await tpmEnv(s.tcti, 'handles-transient')).trim(), '', 'no transient object left');
  t.match(readFileSync(s.auth, 'utf8'), /^hex:[0-9a-f]{64}$/, 'the owner authorization file is whole');
}

t.test('identity init killed after each tpm2 call resumes and completes', async (t) => {
  const reference = await setup(t);
  const full = await initKilledAfter(reference.config, Number.MAX_SAFE_INTEGER);
  t.ok(full.calls > 10, `a full init makes ${full.calls} tpm2 calls`);
  await checkProvisioned(t, reference);

  for (let n = 1; n <= full.calls; n++) {
    await t.test(`killed after tpm2 call ${n} of ${full.calls}`, async (t) => {
      const s = await setup(t);
      const first = await initKilledAfter(s.config, n);
      t.ok(first.killed || first.calls < n, `the first init was killed after call ${n}`);
      const again = await runCli(['identity', 'init', '--config', s.config], 60_000);
      t.equal(again.code, 0, `the next init completes:\n${again.stderr}`);
      t.match(again.stdout, /provisioned|already provisioned/);
      await checkProvisioned(t, s);
    });
  }
});
