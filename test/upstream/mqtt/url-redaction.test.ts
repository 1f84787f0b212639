// Credentials never live in URLs. The config refuses a broker URL with a user
// name or password (config.test.ts has the exact lines); here the attack is a URL
// with credentials that reaches the MQTT upstream anyway (a config object built in
// code, a future path that skips the loader): the broker gets the credentials,
// and not one JSON log line, in any path (connect, lost connection, retries,
// unreachable broker), contains the password.
import { spawn } from 'node:child_process';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import type { MqttConfig } from '../../../src/config/types.js';
import type { ConfigError } from '../../../src/config/load.js';
import { parseConfig } from '../../../src/config/load.js';
import { MqttUpstream } from '../../../src/upstream/mqtt/adapter.js';
import { childEnv, GUARDIAN_BIN } from '../../fixtures/cli.js';
import { captureLogger, codeOf, type LogCapture } from '../../fixtures/logs.js';
import { startMosquitto } from '../../fixtures/mosquitto.js';
import { freePort } from '../../fixtures/ports.js';

const PASSWORD = 'Hunter2-PW';

function doc(url: string): string {
  return stringify({
    version: 1,
    gateway: { id: 'gw1' },
    upstream: { mqtt: { url, reconnect: { initialMs: 100, maxMs: 200 } } },
    buses: [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }],
  });
}

/** A valid config, then the URL swapped for one with credentials, as code that skips the loader would do. */
function smuggled(port: number): MqttConfig {
  const config = parseConfig(doc(`mqtt://127.0.0.1:${port}`)).upstream.mqtt;
  return { ...config, url: `mqtt://guardian:${PASSWORD}@127.0.0.1:${port}` };
}

function noPassword(t: Test, logs: LogCapture): void {
  const leaking = logs.lines.filter((l) => JSON.stringify(l).includes(PASSWORD));
  t.same(leaking, [], `none of ${logs.lines.length} log lines contains the password`);
}

void t.test('the loader refuses credentials in the broker URL, whatever the password holds, and never echoes it', async (t) => {
  for (const pw of [PASSWORD, `${PASSWORD}@x`, `${PASSWORD}/x`, `${PASSWORD} x'y`, `${PASSWORD}:%40`]) {
    const err = t.throws(() => parseConfig(doc(`mqtt://guardian:${pw}@broker:1883`))) as ConfigError;
    t.equal(err.code, 'GUARDIAN_E_CONFIG_INVALID', `password ${JSON.stringify(pw)}: refused`);
    t.ok(err.problems.some((p) => p.replace(/^line \d+, column \d+: /, '').startsWith("upstream.mqtt.url: must not contain a user name or password ('user:pass@')")), 'the problem names the path and says why');
    t.notOk(JSON.stringify({ message: err.message, problems: err.problems, context: err.context }).includes(PASSWORD), 'the error does not contain the password');
  }
});

void t.test('a URL with credentials that reaches the upstream anyway: used for the connection, never logged', async (t) => {
  const broker = await startMosquitto(t);
  const logs = captureLogger('trace');
  const up = new MqttUpstream({ config: smuggled(broker.port), gatewayId: 'gw1', version: '9.9.9', log: logs.log });
  t.teardown(() => up.stop());
  await up.start();
  const connected = await logs.waitFor((l) => l.msg === 'connected to broker');
  t.equal(connected['url'], `mqtt://***@127.0.0.1:${broker.port}`, 'the connect line shows the URL without its credentials');
  t.match(broker.output(), /u'guardian'/, 'the broker did receive the user name from the URL');

  // the broker dies: the lost connection and every retry are logged
  await broker.kill();
  const lost = await logs.waitFor((l) => codeOf(l) === 'GUARDIAN_E_MQTT_DISCONNECTED');
  t.match(lost, { err: { context: { url: `mqtt://***@127.0.0.1:${broker.port}` } } }, 'the lost-connection error carries the redacted URL');
  await logs.waitFor((l) => l.msg === 'broker not reachable; retrying');
  await broker.start();
  await logs.waitFor((l) => l.msg === 'connected to broker' && l !== connected);
  await up.stop();
  noPassword(t, logs);
});

void t.test('an unreachable broker behind a URL with credentials: the connect errors do not contain the password', async (t) => {
  const port = await freePort();
  const logs = captureLogger('trace');
  const up = new MqttUpstream({ config: smuggled(port), gatewayId: 'gw1', version: '9.9.9', log: logs.log });
  t.teardown(() => up.stop());
  await up.start();
  const failed = await logs.waitFor((l) => codeOf(l) === 'GUARDIAN_E_MQTT_CONNECT');
  t.match((failed['err'] as { message?: string }).message, new RegExp(`^broker mqtt://\\*\\*\\*@127\\.0\\.0\\.1:${port}: `), 'the error names the broker without the credentials');
  await logs.waitFor((l) => l.msg === 'broker not reachable; retrying');
  await up.stop();
  noPassword(t, logs);
});

void t.test('guardian watch --url with credentials: they are used, and never printed', async (t) => {
  const broker = await startMosquitto(t);
  const watch = spawn(process.execPath, [GUARDIAN_BIN, 'watch', '--url', `mqtt://guardian:${PASSWORD}@127.0.0.1:${broker.port}`, '--topic', 'x/#'], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => watch.on('exit', (code) => resolve(code)));
  t.teardown(() => { if (watch.exitCode === null) watch.kill('SIGKILL'); });
  let stderr = '';
  const watching = new Promise<void>((resolve) => watch.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.includes('(Ctrl-C to stop)')) resolve();
  }));
  const early = await Promise.race([watching.then(() => undefined), exited.then((code) => `guardian watch exited (${String(code)}) before watching: ${stderr}`)]);
  if (early !== undefined) throw new Error(early);
  watch.kill('SIGINT');
  await exited;
  t.match(stderr, `watching x/# on mqtt://***@127.0.0.1:${broker.port}`, 'the URL is shown without its credentials');
  t.notOk(stderr.includes(PASSWORD), 'stderr does not contain the password');
  t.match(broker.output(), /u'guardian'/, 'the credentials were used');
});
