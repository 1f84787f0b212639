// Fault injection on the uplink: Mosquitto SIGKILLed for 30 s; broker and gateway down at once;
// the outbox bound reached during an outage; the backlog draining while live data flows.
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { startGateway, type GatewayProcess } from '../fixtures/gateway.js';
import { startMosquitto, subscribe, type Broker, type Message, type Subscriber } from '../fixtures/mosquitto.js';
import { tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';
import { startProxy, type Proxy } from '../fixtures/proxy.js';

const TOPIC = 'guardian/gw-out/press/telemetry';
const MARKER = 'test/marker';
const seqOf = (m: Message): number => (JSON.parse(m.payload.toString()) as { seq: number }).seq;
const codeOf = (l: Record<string, unknown>): unknown => (l['err'] as { code?: string } | undefined)?.code;

interface Rig {
  broker: Broker;
  link: Proxy;
  sub: Subscriber;
  config: Record<string, unknown>;
}

async function rig(t: Test, extra: { pollIntervalMs?: number; outbox?: Record<string, unknown>; linkUp?: boolean } = {}): Promise<Rig> {
  const broker = await startMosquitto(t);
  // The gateway reaches the broker through a link the test can cut, so the subscriber is always
  // subscribed before the gateway can deliver (Mosquitto here keeps no sessions across a kill).
  const link = await startProxy(t, broker.port, extra.linkUp ?? true);
  const sub = await subscribe(t, broker.url, [TOPIC, 'guardian/gw-out/failure', MARKER]);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [0] } } }, counter: { unit: 1, table: 'holding', address: 0, periodMs: 20 } });
  const config = {
    version: 1,
    gateway: { id: 'gw-out', stateDir: join(await tmpDir(t), 'state') },
    ...(extra.outbox === undefined ? {} : { outbox: extra.outbox }),
    upstream: { mqtt: { url: `mqtt://127.0.0.1:${link.port}`, keepaliveS: 5, reconnect: { initialMs: 100, maxMs: 1000 } } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'press', unitId: 1, pollIntervalMs: extra.pollIntervalMs ?? 50, points: [{ name: 'n', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  };
  return { broker, link, sub, config };
}

function telemetry(sub: Subscriber): Message[] {
  return sub.messages.filter((m) => m.topic === TOPIC);
}

/**
 * Wait until every seq in [from, to] has arrived (live data may overtake the backlog, so a
 * higher seq arriving says nothing about the lower ones), then assert it.
 */
async function assertComplete(t: Test, sub: Subscriber, to: number, from = 1, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let missing: number[] = [];
  for (;;) {
    const seen = new Set(telemetry(sub).map(seqOf));
    missing = Array.from({ length: to - from + 1 }, (_, i) => from + i).filter((n) => !seen.has(n));
    if (missing.length === 0 || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const duplicates = telemetry(sub).length - new Set(telemetry(sub).map(seqOf)).size;
  t.same(missing.length === 0 ? [] : [missing[0], missing.at(-1), missing.length], [], `every seq ${from}..${to} arrived (${duplicates} duplicates)`);
}

/**
 * Cut the gateway's link, then make sure the broker has handed the subscriber everything it
 * already acknowledged (a marker published after the cut arrives behind it), before a test
 * kills the broker: a broker killed with messages still queued loses them itself.
 */
async function cutAndSettle(r: Rig, gw: GatewayProcess): Promise<void> {
  r.link.down();
  await gw.waitForLog((l) => codeOf(l) === 'GUARDIAN_E_MQTT_DISCONNECTED');
  await r.sub.client.publishAsync(MARKER, 'settled', { qos: 1 });
  await r.sub.waitFor((m) => m.topic === MARKER && r.sub.messages.indexOf(m) >= r.sub.messages.length - 1);
}

/** Restart the broker and resubscribe before letting the gateway through again. */
async function brokerBack(r: Rig): Promise<void> {
  await r.broker.start();
  if (!r.sub.client.connected) await new Promise<void>((resolve) => r.sub.client.once('connect', () => resolve()));
  await r.sub.client.subscribeAsync([TOPIC, 'guardian/gw-out/failure', MARKER], { qos: 1 });
  r.link.up();
}

async function stop(t: Test, gw: GatewayProcess): Promise<void> {
  gw.child.kill('SIGTERM');
  t.equal(await gw.exited, 0, 'clean stop');
}

t.test('Mosquitto SIGKILLed for 30 s and restarted: every reading arrives', async (t) => {
  const r = await rig(t);
  const gw = await startGateway(t, r.config);
  await r.sub.waitFor((m) => m.topic === TOPIC && seqOf(m) >= 10);
  await cutAndSettle(r, gw);
  await r.broker.kill();
  const before = Math.max(...telemetry(r.sub).map(seqOf));
  await new Promise((resolve) => setTimeout(resolve, Number(process.env["OUTAGE_S"] ?? 30) * 1000)); // the outage the issue asks for
  await brokerBack(r);
  const target = before + Number(process.env['OUTAGE_S'] ?? 30) * 15; // the outage at 20 polls/s, with slack
  await assertComplete(t, r.sub, target, 1, 30_000);
  await stop(t, gw);
});

t.test('broker and gateway down at once: restart both, every reading arrives', async (t) => {
  const r = await rig(t);
  const first = await startGateway(t, r.config);
  await r.sub.waitFor((m) => m.topic === TOPIC && seqOf(m) >= 10);
  await cutAndSettle(r, first);
  await r.broker.kill();
  await first.waitForLog((l) => l['msg'] === 'broker not reachable; retrying' && (l['attempt'] as number) >= 3);
  first.child.kill('SIGKILL');
  await first.exited;
  const second = await startGateway(t, r.config);
  await second.waitForLog((l) => l['msg'] === 'broker not reachable; retrying');
  const before = Math.max(...telemetry(r.sub).map(seqOf));
  await brokerBack(r);
  await assertComplete(t, r.sub, before + 40);
  await stop(t, second);
});

t.test('the outbox bound reached in an outage: oldest dropped, counted, reported once the link is back', async (t) => {
  const r = await rig(t, { pollIntervalMs: 20, outbox: { maxBytes: 8192 }, linkUp: false });
  const gw = await startGateway(t, r.config);
  const drop = await gw.waitForLog((l) => codeOf(l) === 'GUARDIAN_E_OUTBOX_DROPPED', 20_000);
  t.match(drop['msg'], /outbox bound reached: dropped \d+ oldest messages/);
  r.link.up();
  const report = await r.sub.waitFor((m) => m.topic === 'guardian/gw-out/failure');
  const body = JSON.parse(report.payload.toString()) as { kind: string; dropped: number; droppedTotal: number };
  t.equal(body.kind, 'outboxDrop');
  t.ok(body.dropped > 0 && body.droppedTotal >= body.dropped, `drop report: ${report.payload.toString()}`);
  await gw.waitForLog((l) => l['msg'] === 'outbox drops reported');
  // What was dropped is the oldest: every seq above the lowest delivered one arrives.
  const firstSeen = await r.sub.waitFor((m) => m.topic === TOPIC);
  const low = Math.min(...telemetry(r.sub).map(seqOf));
  t.ok(low > 1, `the oldest readings were dropped (first delivered seq ${low}; first message seq ${seqOf(firstSeen)})`);
  await assertComplete(t, r.sub, low + 100, low);
  await stop(t, gw);
});

t.test('after an outage the backlog drains at the configured rate while live data goes first', async (t) => {
  const r = await rig(t, { pollIntervalMs: 50, outbox: { drainRatePerS: 20 }, linkUp: false });
  const gw = await startGateway(t, r.config);
  await gw.waitForLog((l) => l['msg'] === 'broker not reachable; retrying' && (l['attempt'] as number) >= 5);
  const upAt = Date.now();
  r.link.up();
  const draining = await gw.waitForLog((l) => l['msg'] === 'link up: draining the backlog while live data flows');
  const backlog = draining['backlog'] as number;
  t.ok(backlog >= 30, `${backlog} messages waited`);
  await r.sub.waitFor((m) => m.topic === TOPIC && seqOf(m) === backlog, 30_000);
  const drainedAt = Date.now();
  const arrivals = telemetry(r.sub).map(seqOf);
  const lastBacklogIndex = arrivals.indexOf(backlog);
  const liveBefore = arrivals.slice(0, lastBacklogIndex).filter((s) => s > backlog);
  t.ok(liveBefore.length >= 3, `${liveBefore.length} live messages arrived while the backlog drained`);
  const seconds = (drainedAt - upAt) / 1000;
  t.ok(seconds >= (backlog - 20) / 20 * 0.8, `the ${backlog}-message backlog took ${seconds.toFixed(1)} s at 20 msg/s`);
  await assertComplete(t, r.sub, backlog + 20);
  await stop(t, gw);
});

t.test('policy stop-polling: at the bound polling pauses instead of dropping, and resumes as the link drains it', async (t) => {
  const r = await rig(t, { pollIntervalMs: 20, outbox: { maxBytes: 8192, policy: 'stop-polling' }, linkUp: false });
  const gw = await startGateway(t, r.config);
  const full = await gw.waitForLog((l) => codeOf(l) === 'GUARDIAN_E_OUTBOX_FULL', 20_000);
  t.match(full['msg'], /outbox full \(\d+ of 8192 bytes\): polling paused/);
  r.link.up();
  await gw.waitForLog((l) => l['msg'] === 'outbox below its bound again: polling resumes');
  const highest = (await r.sub.waitFor((m) => m.topic === TOPIC && seqOf(m) >= 200, 20_000)) && 200;
  await assertComplete(t, r.sub, highest);
  t.notOk(gw.lines.some((l) => codeOf(l) === 'GUARDIAN_E_OUTBOX_DROPPED'), 'nothing was dropped');
  t.notOk(r.sub.messages.some((m) => m.topic === 'guardian/gw-out/failure'), 'no drop report');
  await stop(t, gw);
});
