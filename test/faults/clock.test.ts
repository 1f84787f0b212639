// Fault injection: the wall clock of the gateway process jumps backwards by an hour (libfaketime,
// driven through a file, with the monotonic clock left real) while readings stream.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

const FAKETIME = ['x86_64', 'aarch64', 'arm'].map((a) => `/usr/lib/${a}-linux-gnu${a === 'arm' ? 'eabihf' : ''}/faketime/libfaketime.so.1`).find((p) => existsSync(p)) ?? 'libfaketime.so.1 (install faketime)';
interface Body { seq: number; ts: number }
const body = (m: Message): Body => JSON.parse(m.payload.toString()) as Body;

t.test('the clock jumps back an hour: detected and reported, polling goes on at its rate, no seq lost', async (t) => {
  const offsetFile = join(await tmpDir(t), 'faketime');
  writeFileSync(offsetFile, '+0\n');
  const broker = await startMosquitto(t);
  const sub = await subscribe(t, broker.url, ['guardian/gw-clock/d/telemetry', 'guardian/gw-clock/health']);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [3] } } } });
  const gw = await startGateway(t, {
    version: 1, gateway: { id: 'gw-clock' }, health: { intervalMs: 1000 }, upstream: { mqtt: { url: broker.url } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'd', unitId: 1, pollIntervalMs: 100, points: [{ name: 'v', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  }, { env: { LD_PRELOAD: FAKETIME, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' } });
  const telemetry = (): Body[] => sub.messages.filter((m) => m.topic.endsWith('/telemetry')).map(body);
  await sub.waitFor((m) => m.topic.endsWith('/telemetry') && body(m).seq >= 10);
  writeFileSync(offsetFile, '-1h\n');
  const jump = await gw.waitForLog((l) => (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_CLOCK_JUMP');
  const jumpMs = ((jump['err'] as { context: { jumpMs: number } }).context).jumpMs;
  t.ok(Math.abs(jumpMs + 3_600_000) < 5000, `detected a jump of ${jumpMs} ms`);
  const afterJump = telemetry().length;
  const end = await sub.waitFor((m) => m.topic.endsWith('/telemetry') && telemetry().length >= afterJump + 20, 10_000);
  t.ok(body(end).ts < Date.now() - 3_000_000, 'timestamps follow the new (earlier) time');
  const seqs = telemetry().map((b) => b.seq);
  t.same(seqs, seqs.map((_, i) => i + 1), 'polling never stalled and every seq arrived in order');
  const health = await sub.waitFor((m) => m.topic.endsWith('/health') && (JSON.parse(m.payload.toString()) as { clock: { jumps: number } }).clock.jumps >= 1);
  t.match(JSON.parse(health.payload.toString()), { clock: { jumps: 1 } }, 'reported in the health telemetry');
  gw.child.kill('SIGTERM');
  t.equal(await gw.exited, 0);
});
