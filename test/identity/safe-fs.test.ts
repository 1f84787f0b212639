// The state-directory file primitives under attack (property test over what is
// planted where a file is written or read), crash leftovers of the simulated
// Pluton store's provisioning, the memory-backed directory for the credential
// challenge, and the PEM built for the TLS context.
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { GuardianError } from '../../src/core/errors.js';
import { PlutonSimKeyStore } from '../../src/identity/pluton-sim/store.js';
import { readRegular, writeFileSafe } from '../../src/identity/safe-fs.js';
import { ramDir } from '../../src/identity/tpm/ram-dir.js';
import { pemBuffer } from '../../src/upstream/mqtt/tls.js';
import { captureLogger } from '../fixtures/logs.js';
import { tmpDir } from '../fixtures/ports.js';

const PLANTS = ['none', 'regular', 'symlink-file', 'symlink-dir', 'dangling-symlink', 'fifo', 'hardlink', 'directory'] as const;
type Plant = (typeof PLANTS)[number];

function plant(kind: Plant, at: string, outside: { file: string; dir: string }): void {
  switch (kind) {
    case 'none': return;
    case 'regular': writeFileSync(at, 'old'); return;
    case 'symlink-file': symlinkSync(outside.file, at); return;
    case 'symlink-dir': symlinkSync(outside.dir, at); return;
    case 'dangling-symlink': symlinkSync(path.join(outside.dir, 'created-through-link'), at); return;
    case 'fifo': execFileSync('mkfifo', [at]); return;
    case 'hardlink': linkSync(outside.file, at); return;
    case 'directory': mkdirSync(at); return;
  }
}

t.test('writeFileSafe / readRegular never write or read through what is planted (property)', async (t) => {
  const root = await tmpDir(t);
  const outside = { dir: path.join(root, 'outside'), file: path.join(root, 'outside', 'precious') };
  mkdirSync(outside.dir);
  writeFileSync(outside.file, 'precious');
  const seed = Number.parseInt(process.env['FC_SEED'] ?? String(Date.now() % 1_000_000), 10);
  let i = 0;
  const property = fc.property(fc.constantFrom(...PLANTS), fc.constantFrom('replace' as const, 'create' as const), fc.uint8Array({ minLength: 0, maxLength: 64 }), (kind, mode, bytes) => {
    const dir = path.join(root, `case-${i++}`);
    mkdirSync(dir);
    const target = path.join(dir, 'store.json');
    plant(kind, target, outside);
    const content = Buffer.from(bytes);
    const safe = kind === 'none' || kind === 'regular';
    let result: boolean | GuardianError;
    try {
      result = writeFileSafe(target, content, mode);
    } catch (err) {
      if (!(err instanceof GuardianError)) throw err;
      result = err;
    }
    if (safe) {
      if (result instanceof GuardianError) throw result;
      const expected = kind === 'regular' && mode === 'create' ? Buffer.from('old') : content;
      if (!readRegular(target)!.equals(expected)) throw new Error(`${kind}/${mode}: wrong content`);
      if (result !== !(kind === 'regular' && mode === 'create')) throw new Error(`${kind}/${mode}: wrong result ${String(result)}`);
    } else {
      if (!(result instanceof GuardianError) || result.code !== 'GUARDIAN_E_IDENTITY_UNSAFE_PATH') throw new Error(`${kind}/${mode}: not refused: ${String(result)}`);
      let read: unknown;
      try {
        read = readRegular(target);
      } catch (err) {
        read = err;
      }
      if (!(read instanceof GuardianError) || read.code !== 'GUARDIAN_E_IDENTITY_UNSAFE_PATH') throw new Error(`${kind}: read not refused`);
    }
    if (readFileSync(outside.file, 'utf8') !== 'precious' || readdirSync(outside.dir).join(',') !== 'precious') throw new Error(`${kind}/${mode}: something outside changed`);
    if (readdirSync(dir).some((f) => f.endsWith('.tmp'))) throw new Error(`${kind}/${mode}: a temp file was left`);
  });
  t.doesNotThrow(() => fc.assert(property, { seed, numRuns: 200 }), `seed ${seed} (rerun with FC_SEED=${seed})`);
});

t.test('pluton-sim: what an interrupted provisioning leaves behind does not block the next one', async (t) => {
  const cases: Record<string, (dir: string, secret: string) => void> = {
    'a temp file of the secret, never linked': (dir, secret) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `.${path.basename(secret)}.${randomBytes(8).toString('hex')}.tmp`), randomBytes(7), { mode: 0o600 });
    },
    'an empty secret file (an older version killed between create and write)': (dir, secret) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(secret, '', { mode: 0o600 });
    },
    'the secret without the root record': (dir, secret) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(secret, randomBytes(32), { mode: 0o600 });
    },
  };
  for (const [name, leave] of Object.entries(cases)) {
    await t.test(name, async (t) => {
      const dir = path.join(await tmpDir(t), 'identity');
      const secret = path.join(dir, 'device.secret');
      leave(dir, secret);
      const logs = captureLogger();
      const store = new PlutonSimKeyStore({ dir, secretFile: secret, log: logs.log });
      await store.open();
      t.teardown(() => store.close());
      await store.provision();
      const key = await store.createSigningKey('identity');
      const digest = createHash('sha256').update('m').digest();
      t.ok((await store.sign('identity', digest)).length > 0 && key.publicKeyPem !== undefined, 'provisioned; the key signs');
      t.equal(readFileSync(secret).length, 32, 'the secret is whole');
      t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');
    });
  }
});

t.test('the credential challenge directory is a 0700 directory on a memory file system, removed after', async (t) => {
  const disk = await tmpDir(t);
  t.throws(() => ramDir([disk]), { code: 'GUARDIAN_E_KEYSTORE_IO' }, 'a directory on a disk is not used');
  const r = ramDir([disk, '/dev/shm']);
  t.equal(path.dirname(r.dir), '/dev/shm', 'the first memory-backed base is used');
  t.equal(lstatSync(r.dir).mode & 0o777, 0o700);
  writeFileSync(r.file('secret'), 'x');
  r.remove();
  t.notOk(existsSync(r.dir), 'removed');
});

t.test('pemBuffer builds the same PEM as Buffer#toString(base64) (property)', async (t) => {
  const seed = Number.parseInt(process.env['FC_SEED'] ?? String(Date.now() % 1_000_000), 10);
  const property = fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (bytes) => {
    const der = Buffer.from(bytes);
    const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
    const expected = `-----BEGIN PRIVATE KEY-----\n${lines.map((l) => `${l}\n`).join('')}-----END PRIVATE KEY-----\n`;
    return pemBuffer(der, 'PRIVATE KEY').toString() === expected;
  });
  t.doesNotThrow(() => fc.assert(property, { seed, numRuns: 300 }), `seed ${seed} (rerun with FC_SEED=${seed})`);
});
