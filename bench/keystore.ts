// Latency of the key store operations Guardian uses: sign (a 32-byte digest,
// ECC P-256), HMAC (a SAS string to sign) and unseal (the TLS key), for each
// backend. The TPM backend runs against swtpm started here, or against a real
// TPM with BENCH_TPM_TCTI=device:/dev/tpmrm0 and BENCH_TPM_OWNER_AUTH=<file>
// (its owner authorization; a TPM whose owner auth is empty gets one written there).
// On a real TPM the bench persists one signing key above BENCH_TPM_HANDLE_BASE
// (default 0x81000C00, away from Guardian's 0x81000A00); evict it afterwards with
// tpm2_evictcontrol -C o -P file:<auth> -c 0x81000C01.
//
//   node --import tsx bench/keystore.ts        (BENCH_OPS=200 operations each)
//
// Prints one line of figures per backend: median and p99 in milliseconds.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { KeyStore } from '../src/identity/keystore.js';
import { PlutonSimKeyStore } from '../src/identity/pluton-sim/store.js';
import { TpmKeyStore } from '../src/identity/tpm/store.js';
import { freePort, waitForPort } from '../test/fixtures/ports.js';
import { cleanup, envNum, fmt, installCleanup, makeLog, onTeardown, percentile, track } from './lib.js';

const log = makeLog('keystore');
const OPS = envNum('BENCH_OPS', 200);
const silent = pino({ level: 'silent' });

async function time(op: () => Promise<unknown>): Promise<number[]> {
  await op(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < OPS; i++) {
    const t0 = performance.now();
    await op();
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

async function measure(label: string, store: KeyStore): Promise<string> {
  await store.open();
  await store.provision();
  await store.createSigningKey('bench-sign');
  await store.importHmacKey('bench-sas', randomBytes(32));
  await store.seal('bench-tls', randomBytes(138)); // a P-256 PKCS#8 key is 138 bytes
  const digest = createHash('sha256').update('bench').digest();
  const sas = Buffer.from(`myhub.azure-devices.net%2Fdevices%2Fgw-01\n${Math.floor(Date.now() / 1000) + 3600}`);
  const figures: string[] = [];
  for (const [name, op] of [
    ['sign', () => store.sign('bench-sign', digest)],
    ['hmac', () => store.hmac('bench-sas', sas)],
    ['unseal', () => store.unseal('bench-tls')],
  ] as const) {
    log(`${label}: ${OPS} × ${name}`);
    const ms = await time(op);
    figures.push(`${name} p50 ${fmt(percentile(ms, 0.5), 2)} p99 ${fmt(percentile(ms, 0.99), 2)} ms`);
  }
  await store.close();
  return `[bench] keystore ${label}: ${figures.join(' | ')} (${OPS} ops each, peak RSS ${fmt(process.resourceUsage().maxRSS / 1024, 1)} MB)`;
}

async function startSwtpm(dir: string): Promise<string> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePort();
    const child = track(spawn('swtpm', ['socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear'], { stdio: 'ignore' }));
    onTeardown(() => child.kill('SIGKILL'));
    try {
      await waitForPort(port + 1, '127.0.0.1', 5000);
      return `swtpm:host=127.0.0.1,port=${port}`;
    } catch {
      child.kill('SIGKILL');
    }
  }
  throw new Error('swtpm did not start');
}

async function main(): Promise<void> {
  installCleanup(log);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'guardian-bench-keystore-'));
  onTeardown(() => rmSync(tmp, { recursive: true, force: true }));
  const lines: string[] = [];
  const soft = new PlutonSimKeyStore({ dir: path.join(tmp, 'soft'), secretFile: path.join(tmp, 'soft', 'device.secret'), log: silent });
  lines.push(await measure('pluton-sim', soft));
  const realTcti = process.env['BENCH_TPM_TCTI'];
  const tcti = realTcti ?? (await startSwtpm(mkdtempSync(path.join(tmp, 'swtpm-'))));
  const tpm = new TpmKeyStore({
    dir: path.join(tmp, 'tpm'), tcti, handleBase: envNum('BENCH_TPM_HANDLE_BASE', 0x81000c00), log: silent,
    ownerAuthFile: process.env['BENCH_TPM_OWNER_AUTH'] ?? path.join(tmp, 'owner.auth'),
  });
  lines.push(await measure(realTcti === undefined ? 'tpm (swtpm)' : `tpm (${realTcti})`, tpm));
  for (const line of lines) process.stdout.write(`${line}\n`);
  await cleanup(log);
}

main().catch(async (err: unknown) => {
  log(`failed: ${(err as Error).stack ?? String(err)}`);
  await cleanup(log);
  process.exit(1);
});
