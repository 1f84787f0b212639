import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import type { MqttConfig } from '../../../src/config/types.js';
import { parseConfig } from '../../../src/config/load.js';
import { MqttUpstream } from '../../../src/upstream/mqtt/adapter.js';
import { captureLogger, type LogCapture } from '../../fixtures/logs.js';
import { startMosquitto, subscribe, type Message } from '../../fixtures/mosquitto.js';
import { makePki } from '../../fixtures/pki.js';
import { tmpDir } from '../../fixtures/ports.js';

/** An MQTT upstream config as the loader makes it from YAML. */
function mqttConfig(mqtt: Record<string, unknown>): MqttConfig {
  const doc = {
    version: 1,
    gateway: { id: 'gw1' },
    upstream: { mqtt: { reconnect: { initialMs: 100, maxMs: 400 }, ...mqtt } },
    buses: [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }],
  };
  return parseConfig(stringify(doc)).upstream.mqtt;
}

function upstream(t: Test, config: MqttConfig, logs: LogCapture = captureLogger()): MqttUpstream {
  const up = new MqttUpstream({ config, gatewayId: 'gw1', version: '9.9.9', log: logs.log });
  t.teardown(() => up.stop());
  return up;
}

function connected(up: MqttUpstream): Promise<void> {
  return up.connected ? Promise.resolve() : new Promise((resolve) => up.on('connected', resolve));
}

const json = (m: Message): Record<string, unknown> => JSON.parse(m.payload.toString()) as Record<string, unknown>;
const isState = (state: string) => (m: Message): boolean => m.topic === 'guardian/gw1/state' && json(m)['state'] === state;

for (const protocolVersion of [4, 5] as const) {
  t.test(`plain MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}: online state, QoS 1 telemetry, offline on stop`, async (t) => {
    const broker = await startMosquitto(t);
    const sub = await subscribe(t, broker.url, 'guardian/#');
    const up = upstream(t, mqttConfig({ url: broker.url, protocolVersion }));
    await up.start();
    await connected(up);
    const online = await sub.waitFor(isState('online'));
    t.match(json(online), { state: 'online', version: '9.9.9' });
    await up.publish({ kind: 'telemetry', device: 'boiler', payload: '{"seq":1}' });
    const msg = await sub.waitFor((m) => m.topic === 'guardian/gw1/boiler/telemetry');
    t.equal(msg.payload.toString(), '{"seq":1}');
    await up.publish({ kind: 'health', payload: '{"ok":true}' });
    await sub.waitFor((m) => m.topic === 'guardian/gw1/health');
    await up.stop();
    t.match(json(await sub.waitFor(isState('offline'))), { state: 'offline', reason: 'shutdown' });
    // The state topic is retained: a late subscriber sees the last state at once.
    const late = await subscribe(t, broker.url, 'guardian/gw1/state');
    const retained = await late.waitFor(() => true);
    t.ok(retained.retain);
    t.equal(json(retained)['state'], 'offline');
  });
}

t.test('TLS with a pinned CA and a required client certificate', async (t) => {
  const pki = await makePki(await tmpDir(t));
  const broker = await startMosquitto(t, { tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
  const sub = await subscribe(t, broker.url, 'guardian/#', { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
  const up = upstream(t, mqttConfig({ url: broker.url, tls: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey } }));
  await up.start();
  await connected(up);
  await up.publish({ kind: 'telemetry', device: 'press', payload: '{"seq":7}' });
  t.equal((await sub.waitFor((m) => m.topic === 'guardian/gw1/press/telemetry')).payload.toString(), '{"seq":7}');
  t.match(broker.output(), /guardian-test-gw/, 'the broker saw the client certificate identity');

  t.test('a broker whose certificate is not from the pinned CA is refused', async (t) => {
    const logs = captureLogger();
    const rogue = upstream(t, mqttConfig({ url: broker.url, tls: { ca: pki.rogueCaCert, cert: pki.clientCert, key: pki.clientKey } }), logs);
    await rogue.start();
    const line = await logs.waitFor((l) => (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_MQTT_CONNECT');
    t.match((line['err'] as { message?: string }).message, /certificate/i, 'the cause is in the error it carries');
    t.notOk(rogue.connected);
    await t.rejects(rogue.publish({ kind: 'health', payload: '{}' }), { code: 'GUARDIAN_E_MQTT_DISCONNECTED' });
  });

  t.test('without a client certificate the broker refuses the gateway', async (t) => {
    const logs = captureLogger();
    const anon = upstream(t, mqttConfig({ url: broker.url, clientId: 'anon', tls: { ca: pki.caCert } }), logs);
    await anon.start();
    await logs.waitFor((l) => /broker not reachable; retrying|GUARDIAN_E_MQTT_CONNECT/.test(JSON.stringify(l)));
    t.notOk(anon.connected);
    t.equal(anon.connections, 0);
  });

  t.test('a missing TLS file is a clear error at start', async (t) => {
    const broken = upstream(t, mqttConfig({ url: broker.url, tls: { ca: '/nonexistent/ca.pem' } }));
    await t.rejects(broken.start(), { code: 'GUARDIAN_E_TLS_FILE', message: /cannot read TLS CA \/nonexistent\/ca\.pem/ });
  });
});

t.test('reconnects with backoff after the broker is killed and restarted; online is re-published', async (t) => {
  const broker = await startMosquitto(t);
  const logs = captureLogger();
  const up = upstream(t, mqttConfig({ url: broker.url }), logs);
  await up.start();
  await connected(up);
  await broker.kill();
  await logs.waitFor((l) => (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_MQTT_DISCONNECTED');
  t.notOk(up.connected);
  await t.rejects(up.publish({ kind: 'health', payload: '{}' }), { code: 'GUARDIAN_E_MQTT_DISCONNECTED' });
  // Let several attempts fail, then check the delays grew and stayed jittered within bounds.
  await logs.waitFor((l) => l['msg'] === 'broker not reachable; retrying' && l['attempt'] === 3);
  const delays = logs.lines.filter((l) => typeof l['retryInMs'] === 'number').map((l) => l['retryInMs'] as number);
  const ceilings = [100, 200, 400, 400];
  delays.slice(0, 4).forEach((d, i) => {
    const ceiling = ceilings[i] ?? 400;
    t.ok(d >= ceiling / 2 && d <= ceiling, `retry ${i + 1} waited ${d} ms, within [${ceiling / 2}, ${ceiling}]`);
  });
  const sub = await (async () => { await broker.start(); return subscribe(t, broker.url, 'guardian/#'); })();
  await connected(up);
  t.equal(up.connections, 2);
  await sub.waitFor(isState('online'));
  await up.publish({ kind: 'telemetry', device: 'd', payload: '{"seq":2}' });
  await sub.waitFor((m) => m.topic === 'guardian/gw1/d/telemetry');
});
