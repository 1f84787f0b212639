// A failed connection attempt is logged once, at warn, with its code and its cause (issue 13, findings
// 2 and 15): a closed port, a TLS failure, and a password (SAS) without a user name, which mqtt.js
// would drop before sending CONNECT without any error.
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import type { MqttConfig } from '../../../src/config/types.js';
import { parseConfig } from '../../../src/config/load.js';
import { MqttUpstream } from '../../../src/upstream/mqtt/adapter.js';
import type { UpstreamCredentials } from '../../../src/core/types.js';
import { captureLogger, type LogCapture, type LogLine } from '../../fixtures/logs.js';
import { startMosquitto } from '../../fixtures/mosquitto.js';
import { makePki } from '../../fixtures/pki.js';
import { freePort, tmpDir } from '../../fixtures/ports.js';

function mqttConfig(mqtt: Record<string, unknown>): MqttConfig {
  const doc = {
    version: 1,
    gateway: { id: 'gw1' },
    upstream: { mqtt: { reconnect: { initialMs: 50, maxMs: 200 }, ...mqtt } },
    buses: [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }],
  };
  return parseConfig(stringify(doc)).upstream.mqtt;
}

function upstream(t: Test, config: MqttConfig, logs: LogCapture, credentials?: UpstreamCredentials): MqttUpstream {
  const up = new MqttUpstream({ config, gatewayId: 'gw1', version: '9.9.9', log: logs.log, ...(credentials === undefined ? {} : { credentials }) });
  t.teardown(() => up.stop());
  return up;
}

const codeOf = (l: LogLine): string | undefined => (l['err'] as { code?: string } | undefined)?.code;
const retries = (logs: LogCapture): LogLine[] => logs.lines.filter((l) => l['msg'] === 'broker not reachable; retrying');

/** After `attempts` retries: one line per attempt carries the code, at warn, and no other line repeats it. */
function expectOncePerAttempt(t: Test, logs: LogCapture, cause: RegExp): void {
  const lines = retries(logs);
  const withCode = logs.lines.filter((l) => codeOf(l) === 'GUARDIAN_E_MQTT_CONNECT');
  t.ok(lines.length >= 3, `${lines.length} retries`);
  t.ok(lines.every((l) => l['level'] === 40 && codeOf(l) === 'GUARDIAN_E_MQTT_CONNECT'), 'each retry is a warning with GUARDIAN_E_MQTT_CONNECT');
  t.ok(lines.every((l) => cause.test(String((l['err'] as { message?: string }).message))), `each names the cause ${String(cause)}`);
  t.ok(withCode.length <= lines.length + 1, `the cause is logged once per attempt (${withCode.length} lines with the code, ${lines.length} retries)`);
}

t.test('a closed port: one warning per attempt with the code and ECONNREFUSED', async (t) => {
  const logs = captureLogger();
  const up = upstream(t, mqttConfig({ url: `mqtt://127.0.0.1:${await freePort()}` }), logs);
  await up.start();
  await logs.waitFor((l) => l['msg'] === 'broker not reachable; retrying' && l['attempt'] === 3);
  expectOncePerAttempt(t, logs, /ECONNREFUSED/);
});

t.test('a TLS failure (an unknown CA): one warning per attempt, not two', async (t) => {
  const pki = await makePki(await tmpDir(t));
  const broker = await startMosquitto(t, { tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: false } });
  const logs = captureLogger();
  const up = upstream(t, mqttConfig({ url: broker.url, tls: { ca: pki.rogueCaCert } }), logs);
  await up.start();
  await logs.waitFor((l) => l['msg'] === 'broker not reachable; retrying' && l['attempt'] === 3);
  expectOncePerAttempt(t, logs, /certificate/);
});

t.test('a password (SAS) without a user name: an error naming upstream.mqtt.username, no silent retries', async (t) => {
  const broker = await startMosquitto(t);
  const logs = captureLogger();
  const withUser = mqttConfig({ url: broker.url, username: 'gw1' });
  const noUser = Object.fromEntries(Object.entries(withUser).filter(([key]) => key !== 'username'));
  const config = { ...noUser, sas: { resourceUri: 'hub.example/devices/gw1', ttlS: 3600, renewBeforeS: 300 } } as unknown as MqttConfig;
  // the key store's part is not under test here: a token source that always answers
  const credentials: UpstreamCredentials = { password: () => Promise.resolve({ password: 'SharedAccessSignature sr=x', renewAt: Date.now() + 3_600_000 }) };
  const up = upstream(t, config, logs, credentials);
  await up.start();
  const line = await logs.waitFor((l) => codeOf(l) === 'GUARDIAN_E_CONFIG_INVALID');
  t.equal(line['level'], 50, 'an error');
  t.match(line['msg'], /upstream\.mqtt\.sas needs upstream\.mqtt\.username/);
  t.same(retries(logs), [], 'no "broker not reachable" without a cause');
  t.notOk(up.connected);
});
