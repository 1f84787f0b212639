// Fault injection: the state disk fills up while readings stream, then space returns.
import t from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { startModbusServer } from '../fixtures/pymodbus.js';
import { mountTmpfs } from '../fixtures/tmpfs.js';

const seqOf = (m: Message): number => (JSON.parse(m.payload.toString()) as { seq: number }).seq;
const codeOf = (l: Record<string, unknown>): unknown => (l['err'] as { code?: string } | undefined)?.code ?? l['code'];

t.test('a full state disk: logged with its code, readings held, all delivered once space returns', async (t) => {
  const disk = await mountTmpfs(t, 4096);
  const broker = await startMosquitto(t);
  const sub = await subscribe(t, broker.url, 'guardian/gw-disk/press/telemetry');
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [0] } } }, counter: { unit: 1, table: 'holding', address: 0, periodMs: 20 } });
  const gw = await startGateway(t, {
    version: 1,
    gateway: { id: 'gw-disk', stateDir: disk.path },
    upstream: { mqtt: { url: broker.url } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'press', unitId: 1, pollIntervalMs: 20, points: [
        { name: 'n', table: 'holding', address: 0, type: 'uint16' },
        ...Array.from({ length: 40 }, (_, i) => ({ name: `pad${i}`, table: 'holding', address: 0, type: 'uint16' })),
      ] },
    ] }],
  });
  await sub.waitFor((m) => seqOf(m) >= 10);
  disk.fill();
  const full = await gw.waitForLog((l) => codeOf(l) === 'GUARDIAN_E_STATE_DISK_FULL');
  t.match(full['msg'], /cannot write the outbox .*outbox\.db/);
  const stalled = Math.max(...sub.messages.map(seqOf));
  disk.free();
  await gw.waitForLog((l) => l['msg'] === 'outbox writes work again');
  await sub.waitFor((m) => seqOf(m) >= stalled + 50, 20000);
  const seen = new Set(sub.messages.map(seqOf));
  const highest = Math.max(...seen);
  t.same(Array.from({ length: highest }, (_, i) => i + 1).filter((n) => !seen.has(n)), [], `every seq 1..${highest} arrived`);
  const reports = gw.lines.filter((l) => codeOf(l) === 'GUARDIAN_E_STATE_DISK_FULL' && String(l['level']) === 'error');
  t.equal(reports.length, 1, `reported once, not once a second: ${JSON.stringify(reports.map((l) => l['msg']))}`);
  gw.child.kill('SIGTERM');
  t.equal(await gw.exited, 0);
});
