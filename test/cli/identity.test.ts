// `guardian identity …` against a real swtpm (and the simulated Pluton store),
// then `guardian run` (firewall guard armed) connecting to Mosquitto with the
// sealed TLS key and the certificate the CLI installed.
import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { TpmKeyStore } from '../../src/identity/tpm/store.js';
import { runCli } from '../fixtures/cli.js';
import { startGateway } from '../fixtures/gateway.js';
import { captureLogger } from '../fixtures/logs.js';
import { startMosquitto, subscribe } from '../fixtures/mosquitto.js';
import { makePki, signCsr } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';
import { startSwtpm, type Swtpm } from '../fixtures/swtpm.js';

const run = promisify(execFile);
const BUSES = [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }];

function writeConfig(dir: string, doc: Record<string, unknown>): string {
  const file = path.join(dir, `guardian-${randomBytes(3).toString('hex')}.yaml`);
  writeFileSync(file, stringify({ version: 1, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } }, buses: BUSES, ...doc }));
  return file;
}

async function tpmSetup(t: Test, opts: { manufacture?: boolean } = {}): Promise<{ dir: string; tcti: string; tpm: Swtpm; identity: Record<string, unknown>; config: string }> {
  const dir = await tmpDir(t);
  const tpm = await startSwtpm(t, opts);
  const identity = { backend: 'tpm', tpm: { tcti: tpm.tcti, ownerAuthFile: path.join(dir, 'owner.auth') } };
  return { dir, tcti: tpm.tcti, tpm, identity, config: writeConfig(dir, { gateway: { id: 'gw-cli', stateDir: path.join(dir, 'state') }, identity }) };
}

t.test('identity commands on a TPM (swtpm, manufactured with an EK certificate)', async (t) => {
  const { dir, tcti, tpm, identity, config } = await tpmSetup(t, { manufacture: true });

  const init = await runCli(['identity', 'init', '--config', config]);
  t.equal(init.code, 0, init.stderr);
  t.match(init.stdout, /^provisioned: identity, tls, attest \(tpm\)/);
  const auth = path.join(dir, 'owner.auth');
  t.equal(statSync(auth).mode & 0o777, 0o600, 'the owner authorization file is 0600');
  t.match(readFileSync(auth, 'utf8'), /^hex:[0-9a-f]{64}$/, 'a random 32-byte owner authorization was set');
  const again = await runCli(['identity', 'init', '--config', config]);
  t.equal(again.code, 0);
  t.match(again.stdout, /^already provisioned \(tpm\)/);

  const show = await runCli(['identity', 'show', '--json', '--config', config]);
  t.equal(show.code, 0, show.stderr);
  const report = JSON.parse(show.stdout) as { deviceId: string; backend: string; keys: { name: string; fingerprint: string }[] };
  t.match(report, { deviceId: 'gw-cli', backend: 'tpm', hardwareBacked: true });
  t.same(report.keys.map((k) => k.name), ['attest', 'identity', 'tls']);
  const text = await runCli(['identity', 'show', '--config', config]);
  t.match(text.stdout, /identity \(sign\)  sha256:[0-9a-f]{64}\n  -----BEGIN PUBLIC KEY-----/);

  const pki = await makePki(await tmpDir(t, 'guardian-pki-'));
  const csr = await runCli(['identity', 'csr', '--key', 'tls', '--subject', 'CN=gw-cli, O=Plant 7', '--config', config]);
  t.equal(csr.code, 0, csr.stderr);
  t.match(csr.stdout, /^-----BEGIN CERTIFICATE REQUEST-----/);
  const certFile = path.join(dir, 'gw-cli.crt');
  writeFileSync(certFile, await signCsr(pki, csr.stdout));
  const install = await runCli(['identity', 'install-cert', certFile, '--config', config]);
  t.equal(install.code, 0, install.stderr);
  t.match(install.stdout, /installed for the tls key: CN=gw-cli, O=Plant 7/);
  const mismatch = await runCli(['identity', 'install-cert', pki.clientCert, '--config', config]);
  t.equal(mismatch.code, 1);
  t.match(mismatch.stderr, /GUARDIAN_E_CERT_MISMATCH/);
  const usage = await runCli(['identity', 'csr', '--config', config]);
  t.equal(usage.code, 2, 'csr without --subject is a usage error');
  const unknown = await runCli(['identity', 'frobnicate', '--config', config]);
  t.equal(unknown.code, 2, 'an unknown identity command is a usage error');
  t.equal(unknown.stderr, "guardian: GUARDIAN_E_USAGE: unknown identity command 'frobnicate' (init, show, csr, install-cert, import-sas-key, attest, activate-credential)\n"
    + '  The command line is wrong; run `guardian help`.\n', 'it names every identity command');

  const sasKey = randomBytes(32);
  const imported = await runCli(['identity', 'import-sas-key', '--config', config], 30000, `${sasKey.toString('base64')}\n`);
  t.equal(imported.code, 0, imported.stderr);
  const store = new TpmKeyStore({ dir: path.join(dir, 'state', 'identity'), tcti, ownerAuthFile: auth, handleBase: 0x81000a00, log: captureLogger().log });
  await store.open();
  t.same(await store.hmac('sas', Buffer.from('x')), createHmac('sha256', sasKey).update('x').digest(), 'the imported key computes the same HMAC inside the TPM');
  await store.close();

  const nonce = randomBytes(20).toString('hex');
  const out = path.join(dir, 'quote');
  const attest = await runCli(['identity', 'attest', '--nonce', nonce, '--pcrs', 'sha256:0,1,2,3,7', '--out', out, '--config', config]);
  t.equal(attest.code, 0, attest.stderr);
  const documented = /^\s+(tpm2_checkquote .*)$/m.exec(attest.stdout)?.[1] ?? '';
  t.match(documented, `-q ${nonce}`, 'the output says how to verify');
  const [tool, ...args] = documented.split(' ');
  await t.resolves(run(tool!, args, { cwd: out }), 'the documented tpm2_checkquote command verifies the quote');
  await t.rejects(run(tool!, args.map((a) => (a === nonce ? randomBytes(20).toString('hex') : a)), { cwd: out }), 'and fails for another nonce');
  t.match(attest.stdout, /wrote .* ak\.pub, ek\.pub\.pem and ek\.crt to /);

  // the verifier's side, as the README documents it (openssl and tpm2-tools without a TPM)
  const sh = async (command: string): Promise<string> => (await run('/bin/sh', ['-c', command], { cwd: out })).stdout;
  const ca = tpm.ekCa!;
  t.match(await sh(`openssl verify -CAfile ${ca.root} -untrusted ${ca.issuer} ek.crt`), /ek\.crt: OK/, 'the EK certificate chains to the manufacturer CA');
  await t.resolves(sh('openssl x509 -in ek.crt -pubkey -noout | cmp - ek.pub.pem'), 'ek.pub.pem is the certified EK');
  t.match(await sh('tpm2_print -t TPM2B_PUBLIC ak.pub'), /value: fixedtpm\|fixedparent\|sensitivedataorigin\|userwithauth\|restricted\|sign/, 'the AK is a restricted signing key that cannot leave the TPM');
  await t.resolves(sh('tpm2_print -t TPM2B_PUBLIC -f pem ak.pub | cmp - ak.pub.pem'), 'ak.pub is the key that signed the quote');
  const name = (await sh('echo 000b$(tail -c +3 ak.pub | openssl dgst -sha256 -r | cut -c1-64)')).trim();
  t.match(attest.stdout, `attestation key Name: ${name}`, 'the Name the verifier computes is the one the device reports');
  const challenge = randomBytes(32);
  writeFileSync(path.join(out, 'challenge'), challenge);
  await sh(`tpm2_makecredential -T none -G rsa -u ek.pub.pem -s challenge -n ${name} -o cred.bin`);
  const activated = await runCli(['identity', 'activate-credential', path.join(out, 'cred.bin'), '--config', config]);
  t.equal(activated.code, 0, activated.stderr);
  t.equal(activated.stdout.trim(), challenge.toString('hex'), 'the TPM released the challenge: the AK lives in the TPM that holds the certified EK');

  // a credential for another key's Name (an AK in some other TPM, or a software key) is refused
  await sh(`tpm2_makecredential -T none -G rsa -u ek.pub.pem -s challenge -n 000b${randomBytes(32).toString('hex')} -o other.bin`);
  const refusedCredential = await runCli(['identity', 'activate-credential', path.join(out, 'other.bin'), '--config', config]);
  t.equal(refusedCredential.code, 1);
  t.match(refusedCredential.stderr, /GUARDIAN_E_KEYSTORE_INPUT: the credential was not made for this TPM's endorsement key and attestation key \(TPM response code 0x1df\)/);
  t.notMatch(refusedCredential.stdout, challenge.toString('hex'));
  const garbage = await runCli(['identity', 'activate-credential', path.join(out, 'quote.sig'), '--config', config]);
  t.equal(garbage.code, 1);
  t.match(garbage.stderr, /GUARDIAN_E_KEYSTORE_INPUT: a credential is what tpm2_makecredential writes/);
  t.equal((await runCli(['identity', 'activate-credential', '--config', config])).code, 2, 'without a file: a usage error');
  const transient = (await run('tpm2_getcap', ['handles-transient'], { env: { ...process.env, TPM2TOOLS_TCTI: tcti } })).stdout;
  t.equal(transient.trim(), '', 'no transient object left in the TPM');

  const json = await runCli(['identity', 'attest', '--nonce', nonce, '--config', config]);
  t.match(JSON.parse(json.stdout), {
    nonce, pcrs: 'sha256:0,1,2,3,4,5,6,7', akPublicPem: /BEGIN PUBLIC KEY/, akName: name, ekPublicPem: readFileSync(path.join(out, 'ek.pub.pem'), 'utf8'),
    ekCertificatePem: readFileSync(path.join(out, 'ek.crt'), 'utf8'),
  }, 'JSON on stdout without --out; PCRs from the config');
  const badNonce = await runCli(['identity', 'attest', '--nonce', 'xyz', '--config', config]);
  t.equal(badNonce.code, 2);

  const wrong = path.join(dir, 'wrong.auth');
  writeFileSync(wrong, 'hex:0badc0de', { mode: 0o600 });
  const other = writeConfig(dir, { gateway: { id: 'gw-cli', stateDir: path.join(dir, 'state2') }, identity: { ...identity, tpm: { tcti, ownerAuthFile: wrong } } });
  const refused = await runCli(['identity', 'init', '--config', other]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /GUARDIAN_E_KEYSTORE_AUTH: tpm2_createprimary: TPM response code 0x9a2/, 'a wrong owner authorization is refused with the TPM response code');
});

t.test('identity commands on the simulated Pluton store', async (t) => {
  const dir = await tmpDir(t);
  const config = writeConfig(dir, { gateway: { id: 'gw-soft', stateDir: path.join(dir, 'state') }, identity: { backend: 'pluton-sim' } });
  const init = await runCli(['identity', 'init', '--config', config]);
  t.equal(init.code, 0, init.stderr);
  t.match(init.stdout, /provisioned: identity, tls \(pluton-sim, NOT hardware-backed\)/);
  t.match(init.stderr, /NOT hardware-backed/, 'the warning is logged (on stderr)');
  t.equal(statSync(path.join(dir, 'state', 'identity', 'device.secret')).mode & 0o777, 0o600);
  const attest = await runCli(['identity', 'attest', '--nonce', '00ff', '--config', config]);
  t.equal(attest.code, 1);
  t.match(attest.stderr, /GUARDIAN_E_IDENTITY_UNSUPPORTED/);
  const switched = writeConfig(dir, { gateway: { id: 'gw-soft', stateDir: path.join(dir, 'state') }, identity: { backend: 'tpm', tpm: { tcti: 'swtpm:host=127.0.0.1,port=9' } } });
  const refused = await runCli(['identity', 'show', '--config', switched]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /GUARDIAN_E_IDENTITY_BACKEND/, 'a config naming another backend than the provisioned one is refused');
});

t.test('guardian run: MQTT over TLS with the TPM-sealed key and the installed certificate, firewall guard armed', async (t) => {
  const { dir, identity, config } = await tpmSetup(t);
  const pki = await makePki(await tmpDir(t, 'guardian-pki-'));
  t.equal((await runCli(['identity', 'init', '--config', config])).code, 0);
  const csr = await runCli(['identity', 'csr', '--key', 'tls', '--subject', 'CN=gw-run', '--config', config]);
  const certFile = path.join(dir, 'gw-run.crt');
  writeFileSync(certFile, await signCsr(pki, csr.stdout));
  t.equal((await runCli(['identity', 'install-cert', certFile, '--config', config])).code, 0);

  const broker = await startMosquitto(t, { tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
  const sub = await subscribe(t, broker.url, 'guardian/gw-cli/#', { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
  const gw = await startGateway(t, {
    version: 1,
    gateway: { id: 'gw-cli', stateDir: path.join(dir, 'state') },
    health: { intervalMs: 1000 },
    identity,
    upstream: { mqtt: { url: broker.url, tls: { ca: pki.caCert, identity: true } } },
    buses: BUSES,
  });
  await gw.waitForLog((l) => l.msg === 'connected to broker');
  await sub.waitFor((m) => m.topic === 'guardian/gw-cli/state' && m.payload.toString().includes('online'));
  t.match(broker.output(), /u'gw-run'/, 'the broker saw the certificate issued for the sealed key');
  t.notOk(gw.lines.some((l) => l['code'] === 'GUARDIAN_E_FIREWALL_DENIED' || (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_FIREWALL_DENIED'), 'the guard let the tpm2 tools run');
  t.ok(gw.lines.some((l) => l.msg === 'key store opened' && l['backend'] === 'tpm'));
  const health = JSON.parse((await sub.waitFor((m) => m.topic === 'guardian/gw-cli/health')).payload.toString()) as { identity: Record<string, unknown> };
  t.match(health.identity, { backend: 'tpm', hardwareBacked: true, failures: 0, lastError: null, certificate: { subject: 'CN=gw-run', notAfter: Number }, sas: null },
    'the health telemetry names the key store and the certificate expiry');
});
