// One contract suite for the KeyStore interface, run against both backends:
// the TPM through tpm2-tools and a real swtpm, and the simulated Pluton store.
import { execFile } from 'node:child_process';
import { createHash, createHmac, createPublicKey, randomBytes, verify } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import type { Test } from 'tap';
import { GuardianError } from '../../src/core/errors.js';
import type { KeyStore } from '../../src/identity/keystore.js';
import type { TpmKeyStore } from '../../src/identity/tpm/store.js';
import { rigs, type Rig } from '../fixtures/keystores.js';
import { tmpDir } from '../fixtures/ports.js';

const run = promisify(execFile);

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

async function opened(t: Test, rig: Rig, make: () => KeyStore = () => rig.make()): Promise<KeyStore> {
  const store = make();
  await store.open();
  t.teardown(() => store.close());
  return store;
}

async function provisioned(t: Test, rig: Rig): Promise<KeyStore> {
  const store = await opened(t, rig);
  await store.provision();
  return store;
}

async function rejectsWith(t: Test, p: Promise<unknown>, code: string, message?: RegExp): Promise<GuardianError | undefined> {
  try {
    await p;
    t.fail(`expected ${code}, it succeeded`);
    return undefined;
  } catch (err) {
    t.ok(err instanceof GuardianError, `a GuardianError (${(err as Error).message})`);
    t.equal((err as GuardianError).code, code, `code ${code}`);
    if (message !== undefined) t.match((err as Error).message, message);
    return err as GuardianError;
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => path.join(dir, f)).filter((f) => statSync(f).isFile());
}

/** Every file under dir that holds the secret raw, as hex or as base64. */
function leaks(dir: string, secret: Buffer): string[] {
  const forms = [secret, Buffer.from(secret.toString('hex')), Buffer.from(secret.toString('hex').toUpperCase()), Buffer.from(secret.toString('base64'))];
  return filesUnder(dir).filter((f) => {
    const content = readFileSync(f);
    return forms.some((form) => content.includes(form));
  });
}

function flipBase64(file: string, field: string): void {
  const record = JSON.parse(readFileSync(file, 'utf8')) as { data: Record<string, string> };
  const bytes = Buffer.from(record.data[field]!, 'base64');
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  record.data[field] = bytes.toString('base64');
  writeFileSync(file, JSON.stringify(record));
}

for (const [backend, makeRig] of Object.entries(rigs)) {
  t.test(`${backend} key store contract`, async (t) => {
    t.test('provisioning is idempotent; nothing works before it', async (t) => {
      const rig = await makeRig(t);
      const store = await opened(t, rig);
      t.equal(store.backend, backend);
      t.equal(await store.provisioned(), false);
      await rejectsWith(t, store.createSigningKey('identity'), 'GUARDIAN_E_KEYSTORE_MISSING');
      await store.provision();
      await store.provision();
      t.equal(await store.provisioned(), true);
      t.same(await store.list(), []);
    });

    t.test('ECC P-256 signing: node:crypto verifies; the key is stable; inputs are checked', async (t) => {
      const rig = await makeRig(t);
      const store = await provisioned(t, rig);
      const key = await store.createSigningKey('identity');
      t.equal(key.kind, 'sign');
      const pub = createPublicKey(key.publicKeyPem ?? '');
      t.equal(pub.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'a P-256 key');
      const message = Buffer.from('guardian says hello');
      const signature = await store.sign('identity', sha256(message));
      t.ok(verify('sha256', message, pub, signature), 'the DER signature verifies with node:crypto');
      t.notOk(verify('sha256', Buffer.from('guardian says hellO'), pub, signature), 'and not for another message');
      t.equal((await store.createSigningKey('identity')).publicKeyPem, key.publicKeyPem, 'create-or-open returns the same key');
      const other = await store.createSigningKey('other');
      t.not(other.publicKeyPem, key.publicKeyPem, 'another name is another key');
      t.same((await store.list()).map((k) => k.name), ['identity', 'other']);
      await rejectsWith(t, store.sign('identity', Buffer.alloc(20)), 'GUARDIAN_E_KEYSTORE_INPUT', /32 bytes/);
      await rejectsWith(t, store.sign('nobody', sha256(message)), 'GUARDIAN_E_KEYSTORE_MISSING');
      await rejectsWith(t, store.sign('Bad/Name', sha256(message)), 'GUARDIAN_E_KEYSTORE_INPUT');
    });

    t.test('HMAC of an imported key equals node:crypto HMAC; re-import replaces it', async (t) => {
      const rig = await makeRig(t);
      const store = await provisioned(t, rig);
      const secret = randomBytes(32);
      await store.importHmacKey('sas', secret);
      const data = Buffer.from('myhub.azure-devices.net/devices/gw-01\n1893456000');
      t.same(await store.hmac('sas', data), createHmac('sha256', secret).update(data).digest());
      const big = randomBytes(5000);
      t.same(await store.hmac('sas', big), createHmac('sha256', secret).update(big).digest(), 'longer than one TPM buffer');
      const rotated = randomBytes(64);
      await store.importHmacKey('sas', rotated);
      t.same(await store.hmac('sas', data), createHmac('sha256', rotated).update(data).digest(), 'the rotated key is used');
      await store.createSigningKey('identity');
      await rejectsWith(t, store.hmac('identity', data), 'GUARDIAN_E_KEYSTORE_MISSING', /not a hmac key/);
      await rejectsWith(t, store.importHmacKey('sas', Buffer.alloc(0)), 'GUARDIAN_E_KEYSTORE_INPUT');
    });

    t.test('seal and unseal round trip, up to 16 KiB', async (t) => {
      const rig = await makeRig(t);
      const store = await provisioned(t, rig);
      for (const size of [1, 32, 241, 16 * 1024]) {
        const secret = randomBytes(size);
        await store.seal('blob', secret);
        t.same(await store.unseal('blob'), secret, `${size} bytes`);
      }
      await rejectsWith(t, store.seal('blob', randomBytes(16 * 1024 + 1)), 'GUARDIAN_E_KEYSTORE_INPUT');
      await rejectsWith(t, store.unseal('nothing'), 'GUARDIAN_E_KEYSTORE_MISSING');
    });

    t.test('operations run one at a time and all succeed', async (t) => {
      const rig = await makeRig(t);
      const store = await provisioned(t, rig);
      const key = await store.createSigningKey('identity');
      const secret = randomBytes(32);
      await store.importHmacKey('sas', secret);
      await store.seal('tls', Buffer.from('sealed'));
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => [
        store.sign('identity', sha256(Buffer.from([i]))).then((sig) => verify('sha256', Buffer.from([i]), key.publicKeyPem ?? '', sig)),
        store.hmac('sas', Buffer.from([i])).then((mac) => mac.equals(createHmac('sha256', secret).update(Buffer.from([i])).digest())),
        store.unseal('tls').then((s) => s.toString() === 'sealed'),
      ]).flat());
      t.ok(results.every(Boolean), `${results.length} concurrent operations all correct`);
    });

    t.test('everything survives a restart of the key store and of the TPM', async (t) => {
      const rig = await makeRig(t);
      const first = await provisioned(t, rig);
      const key = await first.createSigningKey('identity');
      const secret = randomBytes(32);
      await first.importHmacKey('sas', secret);
      const sealed = randomBytes(200);
      await first.seal('tls', sealed);
      await first.close();
      await rig.restartPeer();

      const second = await opened(t, rig);
      t.equal(await second.provisioned(), true);
      const message = Buffer.from('after restart');
      t.ok(verify('sha256', message, key.publicKeyPem ?? '', await second.sign('identity', sha256(message))), 'the same signing key');
      t.same(await second.hmac('sas', message), createHmac('sha256', secret).update(message).digest(), 'the same HMAC key');
      t.same(await second.unseal('tls'), sealed, 'the same sealed secret');
      await second.provision();
      t.equal((await second.createSigningKey('identity')).publicKeyPem, key.publicKeyPem, 'provisioning again keeps the keys');
    });

    t.test('no key material in the clear anywhere in the state directory', async (t) => {
      const rig = await makeRig(t);
      const store = await provisioned(t, rig);
      await store.createSigningKey('identity');
      const hmacKey = randomBytes(32);
      await store.importHmacKey('sas', hmacKey);
      const tlsKey = Buffer.from(createHash('sha512').update(randomBytes(16)).digest());
      await store.seal('tls', tlsKey);
      t.ok(filesUnder(rig.dir).length >= 4, `${filesUnder(rig.dir).length} files searched`);
      t.same(leaks(rig.dir, hmacKey), [], 'the HMAC key is not there (raw, hex or base64)');
      t.same(leaks(rig.dir, tlsKey), [], 'the sealed secret is not there');
      t.same(leaks(rig.dir, randomBytes(16)), [], 'random bytes that were never stored are not found either');
      for (const f of filesUnder(path.join(rig.dir, 'keys'))) t.equal(statSync(f).mode & 0o777, 0o600, `${path.basename(f)} is 0600`);
      const planted = path.join(rig.dir, 'keys', 'planted.bin');
      writeFileSync(planted, Buffer.concat([Buffer.from('x'), hmacKey]));
      t.same(leaks(rig.dir, hmacKey), [planted], 'the search does find the key when it is there');
    });

    t.test('a wrong root authorization is refused and creates nothing', async (t) => {
      const rig = await makeRig(t);
      const good = await provisioned(t, rig);
      await good.createSigningKey('identity');
      const bad = await opened(t, rig, () => rig.makeWrongRoot());
      await rejectsWith(t, bad.provision(), 'GUARDIAN_E_KEYSTORE_AUTH');
      await rejectsWith(t, bad.createSigningKey('intruder'), 'GUARDIAN_E_KEYSTORE_AUTH');
      await rejectsWith(t, bad.importHmacKey('intruder-mac', randomBytes(32)), 'GUARDIAN_E_KEYSTORE_AUTH');
      await rejectsWith(t, bad.seal('intruder-seal', randomBytes(32)), 'GUARDIAN_E_KEYSTORE_AUTH');
      t.same((await good.list()).map((k) => k.name), ['identity'], 'nothing was created');
      t.ok(await good.describe('identity'), 'the existing key is untouched');
    });

    t.test('a damaged or swapped key file is refused with a clear error', async (t) => {
      const rig = await makeRig(t);
      const store = await provisioned(t, rig);
      const keys = path.join(rig.dir, 'keys');
      await store.seal('a', Buffer.from('secret a'));
      await store.seal('b', Buffer.from('secret b'));
      await store.importHmacKey('sas', randomBytes(32));

      flipBase64(path.join(keys, 'a.json'), backend === 'tpm' ? 'private' : 'ciphertext');
      await rejectsWith(t, store.unseal('a'), 'GUARDIAN_E_KEYSTORE_CORRUPT', /a\.json/);

      writeFileSync(path.join(keys, 'b.json'), readFileSync(path.join(keys, 'b.json'), 'utf8').slice(0, 40));
      await rejectsWith(t, store.unseal('b'), 'GUARDIAN_E_KEYSTORE_CORRUPT', /b\.json.*not valid JSON/);

      await store.seal('c', Buffer.from('secret c'));
      const c = JSON.parse(readFileSync(path.join(keys, 'c.json'), 'utf8')) as { name: string };
      c.name = 'd';
      writeFileSync(path.join(keys, 'd.json'), JSON.stringify(c));
      await rejectsWith(t, store.unseal('d'), 'GUARDIAN_E_KEYSTORE_CORRUPT', /d\.json/);

      flipBase64(path.join(keys, 'sas.json'), backend === 'tpm' ? 'private' : 'ciphertext');
      await rejectsWith(t, store.hmac('sas', Buffer.from('x')), 'GUARDIAN_E_KEYSTORE_CORRUPT', /sas\.json/);
      t.same(await store.unseal('c'), Buffer.from('secret c'), 'the undamaged secret still unseals');
    });

    if (backend === 'tpm') {
      t.test('attest: a quote over the PCRs with the nonce, verified by tpm2_checkquote and openssl', async (t) => {
        const rig = await makeRig(t);
        const store = await provisioned(t, rig);
        const nonce = randomBytes(16);
        await rejectsWith(t, store.attest(nonce, 'sha256:0'), 'GUARDIAN_E_KEYSTORE_MISSING', /attest/);
        const ak = await store.createAttestationKey();
        t.equal((await store.createAttestationKey()).publicKeyPem, ak.publicKeyPem, 'create-or-open');
        const quote = await store.attest(nonce, 'sha256:0,1,2,3,4,5,6,7');
        t.equal(quote.akPublicPem, ak.publicKeyPem);
        const tmp = await tmpDir(t);
        const file = (n: string): string => path.join(tmp, n);
        writeFileSync(file('ak.pem'), quote.akPublicPem);
        writeFileSync(file('quote.msg'), quote.message);
        writeFileSync(file('quote.sig'), quote.signature);
        writeFileSync(file('quote.pcrs'), quote.pcrs);
        writeFileSync(file('quote.sig.der'), quote.signatureDer);
        const check = (n: Buffer): Promise<unknown> => run('tpm2_checkquote', ['-u', file('ak.pem'), '-m', file('quote.msg'), '-s', file('quote.sig'), '-f', file('quote.pcrs'), '-g', 'sha256', '-q', n.toString('hex')]);
        await t.resolves(check(nonce), 'tpm2_checkquote accepts the quote with this nonce');
        await t.rejects(check(randomBytes(16)), 'and refuses it for another nonce');
        const { stdout } = await run('openssl', ['dgst', '-sha256', '-verify', file('ak.pem'), '-signature', file('quote.sig.der'), file('quote.msg')]);
        t.match(stdout, /Verified OK/, 'openssl verifies the DER signature over the quote');
        t.ok(quote.message.includes(nonce), 'the nonce is inside the signed message');
        t.equal((await store.describe('attest'))?.kind, 'attest', 'the attestation key is kept');
        const again = await store.attest(randomBytes(8), 'sha256:0');
        t.equal(again.akPublicPem, quote.akPublicPem, 'the same attestation key next time');
        await rejectsWith(t, store.attest(Buffer.alloc(0), 'sha256:0'), 'GUARDIAN_E_KEYSTORE_INPUT');
        await rejectsWith(t, store.attest(nonce, 'sha256:0,99'), 'GUARDIAN_E_KEYSTORE_INPUT');
      });

      t.test('endorsement: the AK Name binds it to the EK; credential activation releases a challenge only for that AK and EK', async (t) => {
        const rig = await makeRig(t);
        const store = await provisioned(t, rig);
        await rejectsWith(t, store.endorsement(), 'GUARDIAN_E_KEYSTORE_MISSING', /attest/);
        const ak = await store.createAttestationKey();
        const ek = await store.endorsement();
        t.equal(ek.ekCertificate, undefined, 'an unmanufactured swtpm has no EK certificate');
        t.equal(createPublicKey(ek.ekPublicPem).asymmetricKeyType, 'rsa', 'the EK is the TCG default RSA 2048 template');
        t.same(ek.akName, Buffer.concat([Buffer.from([0x00, 0x0b]), sha256(ek.akPublic.subarray(2))]), 'Name = 0x000b || SHA-256(TPMT_PUBLIC)');
        t.equal((await store.endorsement()).ekPublicPem, ek.ekPublicPem, 'the EK is re-created from the seed: the same key every time');
        t.ok(ak.publicKeyPem !== undefined);

        const tmp = await tmpDir(t);
        const file = (n: string): string => path.join(tmp, n);
        writeFileSync(file('ek.pem'), ek.ekPublicPem);
        const challenge = randomBytes(32);
        writeFileSync(file('challenge'), challenge);
        const makeCredential = async (name: string, out: string, ekPem = file('ek.pem')): Promise<Buffer> => {
          await run('tpm2_makecredential', ['-T', 'none', '-G', 'rsa', '-u', ekPem, '-s', file('challenge'), '-n', name, '-o', file(out)]);
          return readFileSync(file(out));
        };
        t.same(await store.activateCredential(await makeCredential(ek.akName.toString('hex'), 'cred')), challenge, 'the challenge comes back');
        const wrongName = await rejectsWith(t, store.activateCredential(await makeCredential(`000b${randomBytes(32).toString('hex')}`, 'other')),
          'GUARDIAN_E_KEYSTORE_INPUT', /not made for this TPM's endorsement key and attestation key \(TPM response code 0x1df\)/);
        t.equal(wrongName?.context['rc'], '0x1df');

        // another TPM's EK: the same AK Name, but the challenge was encrypted to a key this TPM does not hold
        const otherRig = await makeRig(t);
        const other = await provisioned(t, otherRig);
        await other.createAttestationKey();
        writeFileSync(file('other-ek.pem'), (await other.endorsement()).ekPublicPem);
        await rejectsWith(t, store.activateCredential(await makeCredential(ek.akName.toString('hex'), 'foreign', file('other-ek.pem'))), 'GUARDIAN_E_KEYSTORE_INPUT', /not made for this TPM's endorsement key/);

        await rejectsWith(t, store.activateCredential(Buffer.alloc(0)), 'GUARDIAN_E_KEYSTORE_INPUT', /a credential is what tpm2_makecredential writes/);
        await rejectsWith(t, store.activateCredential(randomBytes(336)), 'GUARDIAN_E_KEYSTORE_INPUT');
        await rejectsWith(t, store.activateCredential(Buffer.concat([Buffer.from('badcc0de00000001', 'hex'), randomBytes(300)])), 'GUARDIAN_E_KEYSTORE_INPUT', /not made for this TPM/);
        await rejectsWith(t, store.activateCredential(Buffer.alloc(4096, 0xba)), 'GUARDIAN_E_KEYSTORE_INPUT', /4096 bytes/);
        t.same(await store.activateCredential(readFileSync(file('cred'))), challenge, 'after all the refusals the TPM still answers (no session or object left behind)');
        const { stdout } = await run('tpm2_getcap', ['handles-transient'], { env: { ...process.env, TPM2TOOLS_TCTI: rig.swtpm!.tcti } });
        t.equal(stdout.trim(), '', 'no transient object left');
      });
    } else {
      t.test('attest is refused: no PCRs in software; the store says once that it is not hardware-backed', async (t) => {
        const rig = await makeRig(t);
        const store = await provisioned(t, rig);
        t.equal(store.hardwareBacked, false);
        await rejectsWith(t, store.attest(randomBytes(16), 'sha256:0'), 'GUARDIAN_E_IDENTITY_UNSUPPORTED');
        await rejectsWith(t, store.createAttestationKey(), 'GUARDIAN_E_IDENTITY_UNSUPPORTED');
        await rejectsWith(t, store.endorsement(), 'GUARDIAN_E_IDENTITY_UNSUPPORTED');
        await rejectsWith(t, store.activateCredential(randomBytes(64)), 'GUARDIAN_E_IDENTITY_UNSUPPORTED');
        await store.open();
        t.equal(rig.logs.lines.filter((l) => /NOT hardware-backed/.test(String(l.msg))).length, 1, 'one warning');
      });
    }
  });
}

t.test('pluton-sim: the device secret must be private and the right size', async (t) => {
  const rig = await rigs['pluton-sim']!(t);
  const store = await provisioned(t, rig);
  await store.createSigningKey('identity');
  const secretFile = path.join(rig.dir, 'device.secret');
  t.equal(statSync(secretFile).mode & 0o777, 0o600, 'created 0600');
  chmodSync(secretFile, 0o644);
  const reopened = await opened(t, rig);
  await rejectsWith(t, reopened.sign('identity', sha256(Buffer.from('x'))), 'GUARDIAN_E_KEYSTORE_SECRET', /mode 644/);
  chmodSync(secretFile, 0o600);
  writeFileSync(secretFile, randomBytes(16));
  const short = await opened(t, rig);
  await rejectsWith(t, short.sign('identity', sha256(Buffer.from('x'))), 'GUARDIAN_E_KEYSTORE_SECRET', /16 bytes/);
});

t.test('tpm: a key evicted from the TPM is persisted again from its wrapped blobs; a key replaced at its handle is refused', async (t) => {
  const rig = await rigs.tpm!(t);
  const store = await provisioned(t, rig);
  const key = await store.createSigningKey('identity');
  const record = JSON.parse(readFileSync(path.join(rig.dir, 'keys', 'identity.json'), 'utf8')) as { data: { handle: number } };
  const handle = `0x${record.data.handle.toString(16)}`;
  const tcti = (store as TpmKeyStore).tools.tcti;
  const auth = `file:${path.join(path.dirname(rig.dir), 'owner.auth')}`;
  await run('tpm2_evictcontrol', ['-C', 'o', '-P', auth, '-c', handle], { env: { ...process.env, TPM2TOOLS_TCTI: tcti } });
  const reopened = await opened(t, rig);
  t.ok(rig.logs.lines.some((l) => l.level === 40 && (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_KEYSTORE_MISSING' && /run `guardian identity init`/.test(String(l.msg))),
    'open logs that the key is gone and how to fix it (not fatal: `identity init` must be able to open the store to repair it)');
  await rejectsWith(t, reopened.sign('identity', sha256(Buffer.from('x'))), 'GUARDIAN_E_KEYSTORE_MISSING');
  const repaired = rig.make();
  t.teardown(() => repaired.close());
  t.equal((await repaired.createSigningKey('identity')).publicKeyPem, key.publicKeyPem, 'create-or-open persists it again');
  t.ok(rig.logs.lines.some((l) => /persisted again/.test(String(l.msg))), 'and logs it');
  await repaired.open();

  // an attacker with the owner authorization puts their own key at the handle
  const env = { ...process.env, TPM2TOOLS_TCTI: tcti };
  const tmp = await tmpDir(t);
  await run('tpm2_evictcontrol', ['-C', 'o', '-P', auth, '-c', handle], { env });
  await run('tpm2_createprimary', ['-C', 'o', '-P', auth, '-G', 'ecc256', '-c', path.join(tmp, 'evil.ctx')], { env });
  await run('tpm2_evictcontrol', ['-C', 'o', '-P', auth, '-c', path.join(tmp, 'evil.ctx'), handle], { env });
  await run('tpm2_flushcontext', ['-t'], { env });
  const swapped = rig.make();
  t.teardown(() => swapped.close());
  await rejectsWith(t, swapped.open(), 'GUARDIAN_E_KEYSTORE_CORRUPT', /holds another key than identity/);
  await rejectsWith(t, swapped.createSigningKey('identity'), 'GUARDIAN_E_KEYSTORE_CORRUPT', /holds another key/);
});

t.test('tpm: an owner authorization file written before provisioning is set on a TPM whose owner auth is empty', async (t) => {
  const rig = await rigs.tpm!(t);
  const authFile = path.join(path.dirname(rig.dir), 'owner.auth');
  writeFileSync(authFile, 'str:operator chosen', { mode: 0o600 });
  const store = await provisioned(t, rig);
  await store.createSigningKey('identity');
  t.equal(readFileSync(authFile, 'utf8'), 'str:operator chosen', 'the file is kept as written');
  const env = { ...process.env, TPM2TOOLS_TCTI: rig.swtpm!.tcti };
  const tmp = await tmpDir(t);
  await t.resolves(run('tpm2_createprimary', ['-C', 'o', '-P', 'str:operator chosen', '-c', path.join(tmp, 'p.ctx')], { env }), 'the TPM now takes that owner authorization');
  await t.rejects(run('tpm2_createprimary', ['-C', 'o', '-c', path.join(tmp, 'q.ctx')], { env }), 'and no longer an empty one');
  await run('tpm2_flushcontext', ['-t'], { env });
  await store.provision();
  t.equal((await store.list()).length, 1, 'provisioning again with the same file works');
});
