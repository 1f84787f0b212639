// The MQTT upstream authenticating with the device identity, on both key store
// backends: client-certificate TLS to a real Mosquitto with the TLS key sealed
// by the store, and IoT Hub SAS tokens (HMAC by the store) renewed before they
// expire, checked on the wire against an independent HMAC computation.
import { createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import mqttPacket from 'mqtt-packet';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import type { GatewayConfig } from '../../../src/config/types.js';
import { parseConfig } from '../../../src/config/load.js';
import { KeyStoreCredentials } from '../../../src/identity/upstream-credentials.js';
import { DeviceIdentity } from '../../../src/identity/identity.js';
import { MqttUpstream } from '../../../src/upstream/mqtt/adapter.js';
import { rigs, type Rig } from '../../fixtures/keystores.js';
import { captureLogger, type LogCapture } from '../../fixtures/logs.js';
import { startMosquitto, subscribe } from '../../fixtures/mosquitto.js';
import { makePki, signCsr } from '../../fixtures/pki.js';
import { sleep, tmpDir } from '../../fixtures/ports.js';
import { startProxy } from '../../fixtures/proxy.js';

function gatewayConfig(rig: Rig, stateDir: string, mqtt: Record<string, unknown>): GatewayConfig {
  const parsed = parseConfig(stringify({
    version: 1,
    gateway: { id: 'gw1', stateDir },
    identity: { backend: rig.config.backend, tpm: rig.config.tpm, plutonSim: rig.config.plutonSim },
    upstream: { mqtt: { reconnect: { initialMs: 100, maxMs: 400 }, ...mqtt } },
    buses: [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }],
  }));
  return { ...parsed, identity: { ...parsed.identity, dir: rig.dir } };
}

function upstream(t: Test, config: GatewayConfig, logs: LogCapture): MqttUpstream & { credentials: KeyStoreCredentials } {
  const credentials = new KeyStoreCredentials(config, logs.log);
  const up = new MqttUpstream({ config: config.upstream.mqtt, gatewayId: 'gw1', version: '9.9.9', log: logs.log, credentials });
  t.teardown(async () => {
    await up.stop();
    await credentials.close();
  });
  return Object.assign(up, { credentials });
}

function connected(up: MqttUpstream): Promise<void> {
  return up.connected ? Promise.resolve() : new Promise((resolve) => up.on('connected', resolve));
}

async function identityOf(t: Test, rig: Rig): Promise<DeviceIdentity> {
  const store = rig.make();
  await store.open();
  t.teardown(() => store.close());
  const identity = new DeviceIdentity(store, { deviceId: 'gw1', dir: rig.dir, log: rig.logs.log });
  await identity.init();
  return identity;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => path.join(dir, f)).filter((f) => statSync(f).isFile());
}

/** The CONNECT packet at the start of what a client sent. */
function connectPacket(bytes: Buffer): mqttPacket.IConnectPacket {
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  let packet: mqttPacket.Packet | undefined;
  parser.on('packet', (p) => { packet ??= p; });
  parser.parse(bytes);
  if (packet?.cmd !== 'connect') throw new Error('no CONNECT packet');
  return packet;
}

for (const [backend, makeRig] of Object.entries(rigs)) {
  t.test(`${backend}: client-certificate TLS with the key sealed by the key store`, async (t) => {
    const rig = await makeRig(t);
    const tmp = await tmpDir(t);
    const pki = await makePki(tmp);
    const identity = await identityOf(t, rig);
    const broker = await startMosquitto(t, { tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
    const config = gatewayConfig(rig, tmp, { url: broker.url, tls: { ca: pki.caCert, identity: true } });

    const early = captureLogger();
    const before = upstream(t, config, early);
    await before.start();
    // a missing certificate cannot pass by itself: one error line, then quiet retries until the key store's files change
    const refusal = await early.waitFor((l) => l.msg?.startsWith('the key store refuses the upstream credentials') === true);
    t.match(refusal['err'], { code: 'GUARDIAN_E_KEYSTORE_MISSING' }, 'without an installed certificate: a clear error, retried');
    t.notOk(before.connected);
    t.match(before.credentials.stats(), { failures: Number, lastError: /no certificate for the TLS key/, certificate: null, sas: null }, 'the health telemetry counts the failure');
    t.ok(before.credentials.stats().failures >= 1);
    await before.stop();

    const issued = await signCsr(pki, await identity.csr(`CN=gw1-${backend}`, 'tls'));
    await identity.installCert(issued, 'issued.crt');
    const logs = captureLogger();
    const up = upstream(t, config, logs);
    const sub = await subscribe(t, broker.url, 'guardian/gw1/#', { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
    await up.start();
    await connected(up);
    await up.publish({ kind: 'telemetry', device: 'boiler', payload: '{"seq":1}' });
    t.equal((await sub.waitFor((m) => m.topic === 'guardian/gw1/boiler/telemetry')).payload.toString(), '{"seq":1}', 'telemetry arrives');
    t.match(broker.output(), new RegExp(`as guardian-gw1 .*u'gw1-${backend}'`), 'the broker identified the client by its certificate');
    const stats = up.credentials.stats();
    t.match(stats, { backend, hardwareBacked: backend === 'tpm', failures: 0, lastError: null, certificate: { subject: `CN=gw1-${backend}` }, sas: null });
    t.ok(Math.abs(stats.certificate!.notAfter - (Date.now() + 30 * 86_400_000)) < 120_000, 'the certificate expiry is reported (issued for 30 days)');
    t.ok(logs.lines.some((l) => l.level === 40 && l.msg === 'the TLS client certificate expires in 30 days: install a new one with `guardian identity install-cert`'),
      'a certificate within 30 days of its end is warned about');

    // a reconnect (the broker is killed and comes back) uses the same key: unsealed once per process,
    // given to OpenSSL once (one TLS context), not a PEM per connection
    const reconnected = new Promise<void>((resolve) => up.on('connected', resolve));
    await broker.kill();
    await broker.start();
    await reconnected;
    t.equal(up.connections, 2, 'connected again after the broker came back');
    t.equal(logs.lines.filter((l) => l.msg === 'TLS client key unsealed (once per process)').length, 1, 'the TLS key was unsealed once for both connections');
    t.equal(logs.lines.filter((l) => l.msg === 'TLS client context made with the key store\'s key').length, 1, 'one TLS context for both connections');
    if (backend === 'tpm') {
      t.equal(logs.lines.filter((l) => l.msg === 'tpm2 call ended' && l['tool'] === 'tpm2_unseal').length, 1, 'the TPM was asked to unseal once');
    }

    const { key } = await identity.tlsCredentials();
    const der = key.export({ format: 'der', type: 'pkcs8' });
    const hits = filesUnder(tmp).concat(filesUnder(rig.dir)).filter((f) => {
      const content = readFileSync(f);
      return content.includes(der) || content.includes(Buffer.from(der.toString('base64').slice(0, 64)));
    });
    t.same(hits, [], 'the TLS private key is nowhere on disk in the clear');
  });

  t.test(`${backend}: SAS token password with an HMAC from the key store, renewed before expiry`, async (t) => {
    const rig = await makeRig(t);
    const tmp = await tmpDir(t);
    const identity = await identityOf(t, rig);
    const sasKey = randomBytes(32);
    await identity.importSasKey(sasKey);
    const broker = await startMosquitto(t);
    const proxy = await startProxy(t, broker.port);
    const parsed = gatewayConfig(rig, tmp, {
      url: `mqtt://127.0.0.1:${proxy.port}`, username: 'myhub.azure-devices.net/gw1/?api-version=2021-04-12',
      sas: { resourceUri: 'myhub.azure-devices.net/devices/gw1' },
    });
    // a 3 s token renewed 1 s before expiry: below the config's minimums, to see a renewal in a test
    const config = { ...parsed, upstream: { mqtt: { ...parsed.upstream.mqtt, sas: { resourceUri: 'myhub.azure-devices.net/devices/gw1', ttlS: 3, renewBeforeS: 1 } } } };
    const logs = captureLogger();
    const up = upstream(t, config, logs);
    let connects = 0;
    up.on('connected', () => { connects += 1; });
    await up.start();
    await connected(up);
    for (let i = 0; i < 100 && connects < 2; i++) await sleep(100);
    t.ok(connects >= 2, `reconnected with a new token (${connects} connections)`);
    t.ok(logs.lines.some((l) => l.msg === 'renewing the SAS token: reconnecting'), 'the renewal is logged');
    await connected(up);
    await up.publish({ kind: 'telemetry', device: 'boiler', payload: '{"seq":2}' });

    const packets = proxy.sent.filter((b) => b.length > 0).map(connectPacket);
    t.ok(packets.length >= 2);
    const expiries: number[] = [];
    for (const packet of packets.slice(0, 2)) {
      t.equal(packet.username, 'myhub.azure-devices.net/gw1/?api-version=2021-04-12');
      const token = String(packet.password);
      const m = /^SharedAccessSignature sr=([^&]+)&sig=([^&]+)&se=(\d+)$/.exec(token);
      t.ok(m, `token format: ${token}`);
      const [, sr, sig, se] = m!;
      t.equal(sr, 'myhub.azure-devices.net%2Fdevices%2Fgw1');
      const expected = createHmac('sha256', sasKey).update(`${sr}\n${se}`).digest('base64');
      t.equal(decodeURIComponent(sig!), expected, 'the signature is HMAC-SHA256(key, "<encoded uri>\\n<expiry>")');
      t.ok(Math.abs(Number(se) - (Date.now() / 1000 + 3)) < 10, 'expiry is about now + ttl');
      expiries.push(Number(se));
    }
    t.ok(expiries[1]! > expiries[0]!, 'the renewed token expires later');
    const stats = up.credentials.stats();
    t.ok(stats.sas !== null && stats.sas.issued >= 2 && stats.sas.expiresAt >= expiries[1]! * 1000, `the health telemetry has the token expiry and count: ${JSON.stringify(stats.sas)}`);
    t.match(stats, { backend, failures: 0, certificate: null });
  });
}
