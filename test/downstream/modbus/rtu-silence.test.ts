// Modbus RTU inter-frame silence, measured on the line: Guardian's master and
// pymodbus's RTU server talk through a relay that timestamps every byte in both
// directions (test/fixtures/pty-relay.ts). Every request must start at least
// t3.5 after the end of the last thing on the line: the previous answer, bytes
// that arrived late (noise, a babbling device), or Guardian's own previous frame.
// A pty ignores the baud rate, so the gaps are exact; the assertions are lower
// bounds only (a busy machine makes gaps longer, never shorter).
// With the gate removed from transport.ts every case here fails (shortest gaps
// 0.25-0.6 ms).
import t from 'tap';
import type { Test } from 'tap';
import type { BusConfig } from '../../../src/config/types.js';
import { captureLogger, codeOf } from '../../fixtures/logs.js';
import { masterFrames, ptyRelay, silencesBeforeFrames, type PtyRelay } from '../../fixtures/pty-relay.js';
import { startModbusServer } from '../../fixtures/pymodbus.js';
import { allGood, busConfig, reading, runAdapter } from './harness.js';

/** Every master frame in these tests is a read request: 8 bytes. */
const READ_REQUEST = 8;

const units = {
  1: { holding: { 0: [111] }, input: { 0: [1001] } },
  2: { holding: { 0: [222] }, input: { 0: [2002] } },
};

function line(relay: PtyRelay, framing: Record<string, unknown>, device: Record<string, unknown> = {}): BusConfig {
  const points = [{ name: 'h', table: 'holding', address: 0, type: 'uint16' }, { name: 'i', table: 'input', address: 0, type: 'uint16' }];
  return busConfig({
    name: 'rs485', type: 'rtu', port: relay.master, ...framing, reconnect: { initialMs: 100, maxMs: 400 },
    devices: [
      { name: 'd1', unitId: 1, pollIntervalMs: 5, timeoutMs: 500, points, ...device },
      { name: 'd2', unitId: 2, pollIntervalMs: 5, timeoutMs: 500, points, ...device },
    ],
  });
}

function checkSilences(t: Test, relay: PtyRelay, t35: number, minFrames: number): void {
  const frames = masterFrames(relay.chunks, READ_REQUEST);
  const silences = silencesBeforeFrames(relay.chunks, frames);
  t.ok(silences.length >= minFrames, `${silences.length} requests measured (at least ${minFrames})`);
  const short = silences.filter((s) => s.silence < t35);
  const min = Math.min(...silences.map((s) => s.silence));
  t.same(short.map((s) => `${s.silence.toFixed(3)} ms before ${s.frame.bytes.toString('hex')}`), [],
    `every request starts >= t3.5 = ${t35.toFixed(3)} ms after the line went quiet (shortest: ${min.toFixed(3)} ms)`);
}

// t3.5 worked out by hand: 3.5 characters x bits per character / baud; 1.75 ms above 19,200 baud
const framings = [
  { what: '1200 baud 8E1 (11 bits a character)', framing: { baudRate: 1200, parity: 'even', dataBits: 8, stopBits: 1 }, t35: (3.5 * 11 * 1000) / 1200, polls: 6 },
  { what: '9600 baud 8N1 (10 bits)', framing: { baudRate: 9600 }, t35: (3.5 * 10 * 1000) / 9600, polls: 12 },
  { what: '19200 baud 8N2 (11 bits)', framing: { baudRate: 19200, stopBits: 2 }, t35: (3.5 * 11 * 1000) / 19200, polls: 12 },
  { what: '38400 baud 8N1 (fixed 1.75 ms)', framing: { baudRate: 38400 }, t35: 1.75, polls: 12 },
];

for (const { what, framing, t35, polls } of framings) {
  void t.test(`RTU ${what}: every request waits t3.5 after the answer before it`, async (t) => {
    const relay = await ptyRelay(t);
    await startModbusServer(t, { mode: 'rtu', serialPath: relay.device, units });
    const run = await runAdapter(t, line(relay, framing));
    // two devices polled as fast as the line allows: requests queue behind each answer
    const [r1, r2] = await Promise.all([run.nextOf('d1', polls), run.nextOf('d2', polls)]);
    t.ok(allGood(r1) && allGood(r2), 'both devices read good values');
    t.same([reading(r1, 'i').value, reading(r2, 'i').value], [1001, 2002], 'each device its own');
    await run.stop();
    checkSilences(t, relay, t35, 4 * polls - 4);
    t.equal(run.results.flatMap((r) => r.readings).filter((x) => x.quality !== 'good').length, 0, 'no bad reading on either device');
  });
}

void t.test('RTU: bytes still arriving hold the next request back; a line that never falls silent is reported, nothing collides', async (t) => {
  const t35 = (3.5 * 11 * 1000) / 1200; // 1200 baud 8E1: 32.08 ms
  const relay = await ptyRelay(t);
  await startModbusServer(t, { mode: 'rtu', serialPath: relay.device, units });
  const logs = captureLogger();
  const run = await runAdapter(t, line(relay, { baudRate: 1200, parity: 'even' }, { timeoutMs: 300, retries: 0, backoff: { initialMs: 100, maxMs: 200 } }), logs);
  await run.nextOf('d1', 2);

  // a babbling device: a byte towards the master every 4 ms (well inside t3.5), until Guardian reports the line busy
  const babble = setInterval(() => relay.inject(Buffer.from([0x55])), 4);
  t.teardown(() => clearInterval(babble));
  const busy = await logs.waitFor((l) => codeOf(l) === 'GUARDIAN_E_MODBUS_LINE_BUSY', 20000);
  clearInterval(babble);
  t.match(busy, { level: 40, err: { code: 'GUARDIAN_E_MODBUS_LINE_BUSY', context: { bus: 'rs485' } } }, 'the request that never found t3.5 of silence is reported with its code');

  // the line falls silent: both devices answer again
  const from = run.results.length;
  for (const device of ['d1', 'd2']) {
    const r = await run.waitFor((x) => x.device === device && allGood(x), { from, timeoutMs: 10000, what: `good ${device} after the babble` });
    t.equal(reading(r, 'h').value, device === 'd1' ? 111 : 222, `${device} answers its own value again`);
  }
  await run.stop();
  t.ok(relay.chunks.filter((c) => c.dir === 'toMaster' && c.bytes.every((b) => b === 0x55)).length > 10, 'the babble was on the line');
  checkSilences(t, relay, t35, 6);
});
