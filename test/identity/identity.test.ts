// The device identity on both backends: provisioning, CSRs that openssl
// verifies, certificates checked against the keys, SAS tokens checked against an
// independent HMAC computation.
import { execFile } from 'node:child_process';
import { createHmac, createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { DeviceIdentity, fingerprint } from '../../src/identity/identity.js';
import { formatToken, SasTokenSource, stringToSign } from '../../src/identity/sas.js';
import { rigs } from '../fixtures/keystores.js';
import { makePki, signCsr } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';

const run = promisify(execFile);

for (const [backend, makeRig] of Object.entries(rigs)) {
  t.test(`${backend}: device identity`, async (t) => {
    const rig = await makeRig(t);
    const store = rig.make();
    await store.open();
    t.teardown(() => store.close());
    const identity = new DeviceIdentity(store, { deviceId: 'gw-01', dir: rig.dir, log: rig.logs.log });

    t.test('init creates the keys once', async (t) => {
      const first = await identity.init();
      t.same(first, backend === 'tpm' ? ['identity', 'tls', 'attest'] : ['identity', 'tls']);
      t.same(await identity.init(), [], 'idempotent: nothing created the second time');
      const report = await identity.show();
      t.match(report, { deviceId: 'gw-01', backend, hardwareBacked: backend === 'tpm' });
      const names = report.keys.map((k) => k.name);
      t.same(names, backend === 'tpm' ? ['attest', 'identity', 'tls'] : ['identity', 'tls']);
      for (const k of report.keys) t.equal(k.fingerprint, fingerprint(k.publicKeyPem ?? ''), `${k.name} fingerprint`);
    });

    t.test('CSRs for the identity and the TLS key verify with openssl and carry the subject and key', async (t) => {
      const dir = await tmpDir(t);
      for (const key of ['identity', 'tls'] as const) {
        const csr = await identity.csr('CN=gw-01, O=Acme Retrofit, C=DE', key);
        const file = path.join(dir, `${key}.csr`);
        writeFileSync(file, csr);
        const { stdout, stderr } = await run('openssl', ['req', '-in', file, '-verify', '-noout', '-subject', '-pubkey']);
        t.match(stdout + stderr, /verify OK/i, `${key}: the self-signature verifies`);
        t.match(stdout, /subject=CN = gw-01, O = Acme Retrofit, C = DE/);
        const pem = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(stdout)?.[0] ?? '';
        t.equal(fingerprint(pem), fingerprint(await identity.publicKeyPem(key)), `${key}: the request is for that key`);
      }
      await t.rejects(identity.csr('not a name', 'identity'), { code: 'GUARDIAN_E_KEYSTORE_INPUT' });
    });

    t.test('install-cert: only a valid certificate for one of the keys is stored', async (t) => {
      const dir = await tmpDir(t);
      const pki = await makePki(dir);
      const issued = await signCsr(pki, await identity.csr('CN=gw-01', 'tls'));
      const chain = issued + readFileSync(pki.caCert, 'utf8');
      const result = await identity.installCert(chain, 'issued.crt');
      t.match(result, { key: 'tls', subject: 'CN=gw-01' });
      t.equal(identity.certificate('tls')?.toString().match(/BEGIN CERTIFICATE/g)?.length, 2, 'the chain is kept, leaf first');
      const creds = await identity.tlsCredentials();
      t.equal(fingerprint(createPublicKey(creds.key).export({ format: 'pem', type: 'spki' }).toString()), result.keyFingerprint, 'the unsealed TLS key matches the certificate');

      const idCert = await signCsr(pki, await identity.csr('CN=gw-01 identity', 'identity'));
      t.match(await identity.installCert(idCert, 'id.crt'), { key: 'identity' }, 'a certificate for the identity key goes to the identity key');

      await t.rejects(identity.installCert(readFileSync(pki.clientCert, 'utf8'), 'other.crt'), { code: 'GUARDIAN_E_CERT_MISMATCH' }, 'a certificate for another key is refused');
      await t.rejects(identity.installCert('hello', 'junk.crt'), { code: 'GUARDIAN_E_CERT_INVALID' });
      await t.rejects(identity.installCert('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'bad.crt'), { code: 'GUARDIAN_E_CERT_INVALID' });
      const later = new Date(Date.now() + 40 * 86_400_000);
      await t.rejects(identity.installCert(issued, 'issued.crt', later), { code: 'GUARDIAN_E_CERT_INVALID', message: /expired/ }, 'an expired certificate is refused');
      t.equal(identity.certificate('tls')?.toString(), `${chain.trim().split(/(?<=-----END CERTIFICATE-----)\n?/).filter(Boolean).join('\n')}\n`, 'the installed chain is unchanged by the refusals');
      const report = await identity.show();
      t.match(report.keys.find((k) => k.name === 'tls')?.certificate, { subject: 'CN=gw-01', issuer: 'CN=Guardian Test CA' });
    });

    t.test('SAS tokens: the HMAC of <encoded uri>\\n<expiry> under the imported key; reused until renewal is due', async (t) => {
      const key = randomBytes(32);
      await identity.importSasKey(key);
      let now = Date.UTC(2026, 10, 22, 12, 0, 0);
      const source = new SasTokenSource(store, { resourceUri: 'myhub.azure-devices.net/devices/gw-01', ttlS: 3600, renewBeforeS: 300 }, () => now);
      const first = await source.token();
      const expiry = now / 1000 + 3600;
      const sig = createHmac('sha256', key).update(`myhub.azure-devices.net%2Fdevices%2Fgw-01\n${expiry}`).digest('base64');
      t.equal(first.token, `SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fgw-01&sig=${encodeURIComponent(sig)}&se=${expiry}`);
      t.equal(first.expiresAt, expiry * 1000);
      t.equal(source.renewAt(first), first.expiresAt - 300_000);
      now += 3000 * 1000;
      t.equal(await source.token(), first, 'the same token before the renewal time');
      now += 300 * 1000;
      const second = await source.token();
      t.not(second.token, first.token, 'a new token once renewal is due');
      t.equal(second.expiresAt, now + 3600_000);
      const policy = new SasTokenSource(store, { resourceUri: 'myhub.azure-devices.net', keyName: 'iothubowner', ttlS: 60, renewBeforeS: 10 }, () => now);
      t.match((await policy.token()).token, /&skn=iothubowner$/, 'a policy key adds skn');
      t.equal(stringToSign('a/b c', 5), 'a%2Fb%20c\n5');
      t.equal(formatToken('h', 7, Buffer.from([0xfb, 0xff])), 'SharedAccessSignature sr=h&sig=%2B%2F8%3D&se=7', 'base64 + / = are URL-encoded');
    });
  });
}
