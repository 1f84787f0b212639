// Fault injection: Guardian SIGKILLed mid-stream, with and without the broker, and restarted
// on the same state directory: every sequence number reaches the subscriber.
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { startMosquitto, subscribe, type Message, type Subscriber } from '../fixtures/mosquitto.js';
import { tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';
import { startProxy } from '../fixtures/proxy.js';

const seqOf = (m: Message): number => (JSON.parse(m.payload.toString()) as { seq: number }).seq;

/** Every number from 1 to the highest seen arrived; duplicates are allowed and counted. */
function checkComplete(t: Test, sub: Subscriber): { highest: number; duplicates: number } {
  const seen = sub.messages.map(seqOf);
  const distinct = new Set(seen);
  const highest = Math.max(...seen);
  const missing = Array.from({ length: highest }, (_, i) => i + 1).filter((n) => !distinct.has(n));
  t.same(missing, [], `every seq from 1 to ${highest} arrived`);
  // A duplicate must be the same message: numbering that restarted would reuse a seq for new data.
  const bodies = new Map<number, string>();
  const conflicts = sub.messages.filter((m) => {
    const body = m.payload.toString();
    const prior = bodies.get(seqOf(m));
    bodies.set(seqOf(m), body);
    return prior !== undefined && prior !== body;
  });
  t.same(conflicts.map((m) => m.payload.toString()), [], 'each seq always carries the same reading');
  return { highest, duplicates: seen.length - distinct.size };
}

t.test('SIGKILL during an outage and a restart on the same state: nothing is lost, numbering continues', async (t) => {
  const broker = await startMosquitto(t);
  const link = await startProxy(t, broker.port);
  const sub = await subscribe(t, broker.url, 'guardian/gw-fault/press/telemetry');
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [0] } } }, counter: { unit: 1, table: 'holding', address: 0, periodMs: 20 } });
  const config = {
    version: 1,
    gateway: { id: 'gw-fault', stateDir: join(await tmpDir(t), 'state') },
    upstream: { mqtt: { url: `mqtt://127.0.0.1:${link.port}`, reconnect: { initialMs: 100, maxMs: 300 } } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'press', unitId: 1, pollIntervalMs: 50, points: [{ name: 'n', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  };
  const first = await startGateway(t, config);
  await sub.waitFor((m) => seqOf(m) >= 20);
  link.down(); // the broker becomes unreachable: readings pile up in the outbox
  await first.waitForLog((l) => (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_MQTT_DISCONNECTED');
  const before = sub.messages.length;
  await first.waitForLog((l) => l['msg'] === 'broker not reachable; retrying' && (l['attempt'] as number) >= 4);
  first.child.kill('SIGKILL');
  t.equal(await first.exited, 'SIGKILL');
  t.equal(sub.messages.length, before, 'nothing was delivered during the outage');

  const second = await startGateway(t, config);
  const opened = await second.waitForLog((l) => l['msg'] === 'outbox opened');
  t.ok((opened['pending'] as number) > 0, `the restarted gateway found ${String(opened['pending'])} stored messages`);
  link.up();
  const highestBefore = Math.max(...sub.messages.map(seqOf));
  await sub.waitFor((m) => seqOf(m) >= highestBefore + 40, 20000);
  const { highest, duplicates } = checkComplete(t, sub);
  t.ok(highest >= highestBefore + 40);
  t.comment(`delivered up to seq ${highest}, ${duplicates} duplicates`);
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
});

t.test('SIGKILL while publishing (broker up) and restart: every seq arrives, duplicates allowed', async (t) => {
  const broker = await startMosquitto(t);
  const sub = await subscribe(t, broker.url, 'guardian/gw-fault/press/telemetry');
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [0] } } }, counter: { unit: 1, table: 'holding', address: 0, periodMs: 10 } });
  const config = {
    version: 1,
    gateway: { id: 'gw-fault', stateDir: join(await tmpDir(t), 'state') },
    upstream: { mqtt: { url: broker.url, reconnect: { initialMs: 100, maxMs: 300 } } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'press', unitId: 1, pollIntervalMs: 10, points: [{ name: 'n', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  };
  for (let round = 0; round < 3; round++) {
    const gw = await startGateway(t, config);
    const target = (sub.messages.length === 0 ? 0 : Math.max(...sub.messages.map(seqOf))) + 50;
    await sub.waitFor((m) => seqOf(m) >= target, 15000);
    gw.child.kill('SIGKILL');
    await gw.exited;
  }
  const last = await startGateway(t, config);
  const highestBefore = Math.max(...sub.messages.map(seqOf));
  await sub.waitFor((m) => seqOf(m) >= highestBefore + 20, 15000);
  const { duplicates } = checkComplete(t, sub);
  t.comment(`${sub.messages.length} messages, ${duplicates} duplicates across 3 SIGKILLs`);
  last.child.kill('SIGTERM');
  t.equal(await last.exited, 0);
});
