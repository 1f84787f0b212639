import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { listeningPorts, startGateway } from '../fixtures/gateway.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { makePki } from '../fixtures/pki.js';
import { freePort, tmpDir } from '../fixtures/ports.js';
import { startProxy } from '../fixtures/proxy.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

const json = (m: Message): Record<string, unknown> => JSON.parse(m.payload.toString()) as Record<string, unknown>;

function gatewayConfig(brokerUrl: string, buses: unknown[]): Record<string, unknown> {
  return {
    version: 1,
    gateway: { id: 'gw-e2e', shutdownTimeoutMs: 5000 },
    upstream: { mqtt: { url: brokerUrl, keepaliveS: 5, reconnect: { initialMs: 100, maxMs: 1000 } } },
    buses,
  };
}

function tcpBus(name: string, port: number, devices: unknown[]): Record<string, unknown> {
  return { name, type: 'tcp', host: '127.0.0.1', port, reconnect: { initialMs: 100, maxMs: 500 }, devices };
}

t.test('guardian run: Modbus TCP → MQTT end to end; SIGKILL leaves the last will, SIGTERM exits 0', async (t) => {
  const broker = await startMosquitto(t);
  const modbus = await startModbusServer(t, {
    mode: 'tcp',
    units: { 1: { holding: { 0: [0, 2150] }, input: { 0: [0x4049, 0x0fdb] } } },
    counter: { unit: 1, table: 'holding', address: 0, periodMs: 50 },
  });
  const sub = await subscribe(t, broker.url, 'guardian/#');
  const config = gatewayConfig(broker.url, [tcpBus('plc', modbus.port, [{
    name: 'press', unitId: 1, pollIntervalMs: 100, timeoutMs: 500,
    points: [
      { name: 'counter', table: 'holding', address: 0, type: 'uint16' },
      { name: 'temp', table: 'holding', address: 1, type: 'int16', scale: 0.01, unit: '°C' },
      { name: 'pi', table: 'input', address: 0, type: 'float32' },
    ],
  }])]);

  const gw = await startGateway(t, config);
  await sub.waitFor((m) => m.topic === 'guardian/gw-e2e/state' && json(m)['state'] === 'online');
  await sub.waitFor((m) => m.topic === 'guardian/gw-e2e/press/telemetry' && (json(m)['seq'] as number) >= 5);
  const telemetry = sub.messages.filter((m) => m.topic === 'guardian/gw-e2e/press/telemetry').map(json);
  t.same(telemetry.map((b) => b['seq']), telemetry.map((_, i) => i + 1), 'seq starts at 1 and has no gaps');
  const first = telemetry[0] as { points: Record<string, unknown>; quality: Record<string, string>; ts: number };
  t.match(first.points, { temp: 21.5, pi: 3.1415927 });
  t.same(first.quality, { counter: 'good', temp: 'good', pi: 'good' });
  t.ok(Math.abs(first.ts - Date.now()) < 60000, 'ts is epoch ms');
  const counters = telemetry.map((b) => (b['points'] as Record<string, number>)['counter'] as number);
  t.ok(counters[counters.length - 1]! > counters[0]!, `the device's changing counter is reported (${counters.join(',')})`);
  t.same(listeningPorts(gw.child.pid!), [], 'guardian run with a real config starts no simulator and no broker');

  t.test('SIGKILL: the broker publishes the retained last will (offline)', async (t) => {
    gw.child.kill('SIGKILL');
    t.equal(await gw.exited, 'SIGKILL');
    const will = await sub.waitFor((m) => m.topic === 'guardian/gw-e2e/state' && json(m)['state'] === 'offline');
    t.match(json(will), { state: 'offline', reason: 'lost' });
  });

  t.test('SIGTERM: in-flight publishes finish, offline is published, exit code 0', async (t) => {
    const gw2 = await startGateway(t, config);
    const online = sub.messages.length;
    await sub.waitFor((m) => sub.messages.indexOf(m) >= online && m.topic === 'guardian/gw-e2e/state' && json(m)['state'] === 'online');
    await sub.waitFor((m) => sub.messages.indexOf(m) >= online && m.topic.endsWith('/telemetry'));
    gw2.child.kill('SIGTERM');
    t.equal(await gw2.exited, 0);
    const stopped = gw2.lines.find((l) => l['msg'] === 'guardian stopped');
    t.match(stopped, { drained: true }, 'every queued message was confirmed before exit');
    const bye = await sub.waitFor((m) => sub.messages.indexOf(m) >= online && m.topic === 'guardian/gw-e2e/state' && json(m)['state'] === 'offline');
    t.match(json(bye), { reason: 'shutdown' });
    t.equal(gw2.stderr(), '', 'nothing on stderr');
  });
});

t.test('a bus that cannot be opened is isolated: the other bus keeps publishing', async (t) => {
  const broker = await startMosquitto(t);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [42] } } } });
  const deadPort = await freePort(); // nothing listens here
  const sub = await subscribe(t, broker.url, 'guardian/gw-e2e/+/telemetry');
  const point = { name: 'v', table: 'holding', address: 0, type: 'uint16' };
  const gw = await startGateway(t, gatewayConfig(broker.url, [
    tcpBus('gone', deadPort, [{ name: 'ghost', unitId: 1, pollIntervalMs: 100, points: [point] }]),
    tcpBus('ok', modbus.port, [{ name: 'alive', unitId: 1, pollIntervalMs: 100, points: [point] }]),
  ]));
  await sub.waitFor((m) => m.topic === 'guardian/gw-e2e/alive/telemetry' && json(m)['seq'] === 10);
  const ghost = await sub.waitFor((m) => m.topic === 'guardian/gw-e2e/ghost/telemetry');
  t.same(json(ghost)['quality'], { v: 'bad:disconnected' }, 'the dead bus reports bad quality upstream');
  const connectErr = await gw.waitForLog((l) => (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_MODBUS_CONNECT');
  t.match(connectErr['msg'], new RegExp(`cannot open tcp bus gone \\(127\\.0\\.0\\.1:${deadPort}\\)`));
  await gw.waitForLog((l) => (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_DEVICE_BACKOFF');
});

t.test('the broker unreachable at start: the gateway keeps polling, queues, and delivers once it is reachable', async (t) => {
  const broker = await startMosquitto(t);
  const link = await startProxy(t, broker.port, false);
  const sub = await subscribe(t, broker.url, 'guardian/gw-e2e/press/telemetry');
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [7] } } } });
  const gw = await startGateway(t, gatewayConfig(`mqtt://127.0.0.1:${link.port}`, [tcpBus('plc', modbus.port, [
    { name: 'press', unitId: 1, pollIntervalMs: 100, points: [{ name: 'v', table: 'holding', address: 0, type: 'uint16' }] },
  ])]));
  await gw.waitForLog((l) => l['msg'] === 'broker not reachable; retrying' && (l['attempt'] as number) >= 3);
  link.up();
  // Live readings go first and may overtake the backlog (README, "The outbox"): wait until every
  // number from 1 up to the highest seen has arrived, at least up to 3.
  const seqs = (): number[] => sub.messages.map((m) => json(m)['seq'] as number);
  const complete = (): boolean => {
    const got = new Set(seqs());
    const max = Math.max(0, ...got);
    return max >= 3 && Array.from({ length: max }, (_, i) => i + 1).every((n) => got.has(n));
  };
  await sub.waitFor(() => complete(), 15000);
  const got = seqs();
  t.ok(got.includes(1), 'the first reading, taken while the broker was unreachable, is delivered');
  const backlog = got.filter((n) => n <= 3);
  t.same(backlog, [1, 2, 3], 'the backlog arrives in order, once each; a live reading may come before it');
});

t.test('TLS files missing at start: run refuses before starting anything (check-config\'s promise); once they exist it starts and delivers', async (t) => {
  const dir = await tmpDir(t);
  const pki = await makePki(await tmpDir(t));
  const broker = await startMosquitto(t, { tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
  const sub = await subscribe(t, broker.url, 'guardian/gw-e2e/press/telemetry', { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [7] } } } });
  const tls = { ca: join(dir, 'later', 'ca.pem'), cert: join(dir, 'later', 'client.pem'), key: join(dir, 'later', 'client.key') };
  const config = gatewayConfig(broker.url, [tcpBus('plc', modbus.port, [
    { name: 'press', unitId: 1, pollIntervalMs: 100, points: [{ name: 'v', table: 'holding', address: 0, type: 'uint16' }] },
  ])]);
  ((config['upstream'] as Record<string, Record<string, unknown>>)['mqtt'] as Record<string, unknown>)['tls'] = tls;
  const refused = await startGateway(t, config);
  t.equal(await refused.exited, 1, 'run exits 1');
  t.match(refused.stderr(), /^guardian: GUARDIAN_E_CONFIG_FILES: .* has 3 problems:\nupstream\.mqtt\.tls\.ca: .*later\/ca\.pem: no such file\n/, 'naming each file');
  t.notOk(refused.lines.some((l) => l['msg'] === 'guardian starting'), 'nothing was started');
  mkdirSync(join(dir, 'later'));
  copyFileSync(pki.caCert, tls.ca);
  copyFileSync(pki.clientCert, tls.cert);
  copyFileSync(pki.clientKey, tls.key);
  await startGateway(t, config);
  await sub.waitFor((m) => json(m)['seq'] === 3, 20000);
  const seqs = sub.messages.map((m) => json(m)['seq'] as number);
  t.same(seqs, seqs.map((_, i) => i + 1), 'every reading since start, in order');
});
