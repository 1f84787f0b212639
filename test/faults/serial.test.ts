// Fault injection on the device side, through the whole gateway: the serial device unplugged
// (the pty disappears) and plugged back: reported with bad quality, recovered without a restart,
// and every sequence number reaches the subscriber.
import t from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { startModbusServer } from '../fixtures/pymodbus.js';
import { ptyPair } from '../fixtures/socat.js';

interface Body { seq: number; points: Record<string, unknown>; quality: Record<string, string> }
const body = (m: Message): Body => JSON.parse(m.payload.toString()) as Body;

t.test('the pty removed and recreated: bad quality reported, good again without a restart, no seq missing', async (t) => {
  const pair = await ptyPair(t);
  const modbus = await startModbusServer(t, { mode: 'rtu', serialPath: pair.b, units: { 1: { holding: { 0: [0] } } }, counter: { unit: 1, table: 'holding', address: 0, periodMs: 50 } });
  await modbus.waitSerialOpen();
  const broker = await startMosquitto(t);
  const sub = await subscribe(t, broker.url, 'guardian/gw-serial/meter/telemetry');
  const gw = await startGateway(t, {
    version: 1, gateway: { id: 'gw-serial' }, upstream: { mqtt: { url: broker.url } },
    buses: [{ name: 'rs485', type: 'rtu', port: pair.a, baudRate: 19200, reconnect: { initialMs: 100, maxMs: 500 }, devices: [
      { name: 'meter', unitId: 1, pollIntervalMs: 100, timeoutMs: 200, retries: 0, backoff: { initialMs: 100, maxMs: 500 },
        points: [{ name: 'n', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  });
  await sub.waitFor((m) => body(m).seq >= 5 && body(m).quality['n'] === 'good');
  await pair.kill(); // unplugged
  const bad = await sub.waitFor((m) => body(m).quality['n'] !== 'good', 15_000);
  t.match(body(bad).quality['n'], /^bad:(disconnected|timeout)$/, `reported as ${body(bad).quality['n']}`);
  t.equal(body(bad).points['n'], null);
  await gw.waitForLog((l) => (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_DEVICE_BACKOFF');
  await pair.start(); // plugged back in at the same path
  await modbus.waitSerialOpen();
  const good = await sub.waitFor((m) => body(m).seq > body(bad).seq && body(m).quality['n'] === 'good', 20_000);
  t.type(body(good).points['n'], 'number');
  await gw.waitForLog((l) => l['code'] === 'GUARDIAN_E_DEVICE_RECOVERED');
  const last = await sub.waitFor((m) => body(m).seq >= body(good).seq + 10);
  const seen = new Set(sub.messages.map((m) => body(m).seq));
  t.same(Array.from({ length: body(last).seq }, (_, i) => i + 1).filter((n) => !seen.has(n)), [], 'every seq arrived');
  t.equal(gw.lines.filter((l) => l['msg'] === 'guardian starting').length, 1, 'no restart');
  gw.child.kill('SIGTERM');
  t.equal(await gw.exited, 0);
});
