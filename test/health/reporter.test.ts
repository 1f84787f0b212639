import t from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

const body = (m: Message): Record<string, unknown> => JSON.parse(m.payload.toString()) as Record<string, unknown>;

t.test('health telemetry: system, outbox, devices and upstream figures on the health topic', async (t) => {
  const broker = await startMosquitto(t);
  const sub = await subscribe(t, broker.url, 'guardian/gw-health/health');
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [5] } } } });
  const point = { name: 'v', table: 'holding', address: 0, type: 'uint16' };
  const gw = await startGateway(t, {
    version: 1,
    gateway: { id: 'gw-health' },
    health: { intervalMs: 1000 },
    upstream: { mqtt: { url: broker.url } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'alive', unitId: 1, pollIntervalMs: 100, points: [point] },
      { name: 'silent', unitId: 9, pollIntervalMs: 100, timeoutMs: 100, retries: 0, backoff: { initialMs: 100, maxMs: 200 }, points: [point] },
    ] }],
  });
  await sub.waitFor(() => sub.messages.length >= 2, 10000);
  const h = body(sub.messages[1]!) as {
    cpu: { loadPercent: number; temperatureC: number | null }; memory: { totalBytes: number; availableBytes: number; processRssBytes: number };
    stateVolume: { freeBytes: number; totalBytes: number }; outbox: { depth: number; oldestAgeS: number | null; dropped: number };
    upstream: { reconnects: number }; uptimeS: number; version: string;
    devices: Record<string, { polls: number; failures: number; successRate: number | null; backedOff: boolean; lastError: string | null }>;
  };
  t.type(h.cpu.loadPercent, 'number');
  t.ok(h.cpu.temperatureC === null || typeof h.cpu.temperatureC === 'number', 'temperature where the board has a sensor, else null');
  t.ok(h.memory.totalBytes > h.memory.availableBytes && h.memory.processRssBytes > 10_000_000);
  t.ok(h.stateVolume.freeBytes > 0 && h.stateVolume.totalBytes >= h.stateVolume.freeBytes);
  t.type(h.outbox.depth, 'number');
  t.equal(h.outbox.dropped, 0);
  t.equal(h.upstream.reconnects, 0);
  t.match(h.version, /^\d+\.\d+\.\d+$/);
  t.ok(h.uptimeS >= 1);
  t.ok(h.devices['alive']!.polls >= 2, `alive polled ${h.devices['alive']!.polls} times in the interval`);
  t.equal(h.devices['alive']!.successRate, 1);
  t.equal(h.devices['alive']!.lastError, null);
  t.equal(h.devices['silent']!.successRate, 0);
  t.equal(h.devices['silent']!.backedOff, true);
  t.match(h.devices['silent']!.lastError, /^GUARDIAN_E_MODBUS_TIMEOUT: /);
  t.equal((h as { identity?: unknown }).identity, null, 'no key store behind this upstream');
  gw.child.kill('SIGTERM');
  t.equal(await gw.exited, 0);
});
