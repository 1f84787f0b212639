// A Modbus RTU device that times out, answers with exceptions or with garbage
// (bad CRC, another unit's id, a truncated frame, line noise, a late answer).
// The adapter runs on one end of a socat pty pair, test/fixtures/bad_rtu_device.py
// on the other; the device serves two unit ids on the same line and only one of
// them misbehaves. For each fault: the polls of the bad unit carry the bad
// quality the fault maps to, the failure is logged with its code (and
// GUARDIAN_E_DEVICE_BACKOFF where the device stopped answering properly), and
// after the device is switched back to good it recovers to its configured values
// (GUARDIAN_E_DEVICE_RECOVERED) with the same adapter, never restarted.
// Throughout: no reading is ever 'good' with a value other than the configured
// one, and the healthy unit on the same line never gets a bad reading.
//
// What modbus-serial (RTU buffered port) makes of each fault:
//   bad-crc     -> a complete frame with a wrong CRC: 'CRC error'    -> bad:frame
//   wrong-unit  -> the RTU port only takes frames that start with the unit id
//                  it asked: a frame from another unit is never taken, the
//                  request times out                                 -> bad:timeout
//   truncated   -> waits for the missing bytes                      -> bad:timeout
//   silent      ->                                                   -> bad:timeout
//   exception 4 -> a valid exception frame                           -> bad:exception:4
//                  (the device answered: no backoff)
//   noise       -> random bytes with no valid frame: nothing starts with the
//                  unit id and function code, so                    -> bad:timeout
//                  (bad:frame if a burst happens to begin like a frame header)
//   late        -> the right frame, 1.25 timeouts late               -> bad:timeout
//
// Two bugs this found (fixed in src/downstream/modbus): modbus-serial's RTU port
// kept the bytes a failed request left behind and scanned them again with the
// next request's answer, so the bad unit's frame carrying the healthy unit's id
// was reported as the healthy unit's good values (transport.ts now starts every
// request from an empty receive buffer); and a device answering later than its
// timeout had each late answer taken as the answer to its next request (its
// retry, or the next read of the same length: the values of registers 0-1
// reported as those of 10-11), so it looked healthy while reporting shifted
// values (device.ts now waits one more timeout before the next request to a
// device whose request timed out or came garbled, and what arrived meanwhile is
// discarded).
import t from 'tap';
import type { Test } from 'tap';
import type { PollResult, Quality } from '../../src/core/types.js';
import { startBadDevice, type BadDevice, type BadMode } from '../fixtures/bad-device.js';
import { captureLogger, codeOf, type LogLine } from '../fixtures/logs.js';
import { ptyPair } from '../fixtures/socat.js';
import { allGood, busConfig, runAdapter, type RunningAdapter } from '../downstream/modbus/harness.js';

const BAD_UNIT = 1;
const HEALTHY_UNIT = 2;
// Both units answer reads of two registers, so a frame of one has the length
// the other's request expects: another unit's answer could pass as its own.
const REGISTERS = {
  [BAD_UNIT]: { 0: [1111, 1112], 10: [1121, 1122] },
  [HEALTHY_UNIT]: { 0: [2222, 2223] },
};
const EXPECTED: Record<string, Record<string, number>> = {
  bad: { a0: 1111, a1: 1112, b0: 1121, b1: 1122 },
  healthy: { h0: 2222, h1: 2223 },
};
const INTERVAL = 100;
// The test relies on the device's garbage arriving within the bad unit's timeout
// (a frame forged with the healthy unit's id that arrives later, while the healthy
// unit's request is pending, is its answer as far as any master can tell) and on
// a late answer arriving between 1 and 2 timeouts after its request. 400 ms
// leaves room for a loaded machine's scheduling delays; the whole run takes ~25 s.
const BAD_TIMEOUT = 400;

const holding = (name: string, address: number): Record<string, unknown> => ({ name, table: 'holding', address, type: 'uint16' });

interface Case {
  readonly name: string;
  readonly mode: BadMode;
  /** the qualities the bad unit's polls may carry while the fault lasts */
  readonly qualities: readonly Quality[];
  /** the code its failure is logged with */
  readonly code: string;
  /** the device stopped answering properly: backed off, then recovered */
  readonly backoff: boolean;
}

const CASES: readonly Case[] = [
  { name: 'bad CRC', mode: { mode: 'bad-crc' }, qualities: ['bad:frame'], code: 'GUARDIAN_E_MODBUS_FRAME', backoff: true },
  // the worst case of a wrong unit id: the frame carries the healthy unit's id
  { name: 'wrong unit id (the healthy unit\'s)', mode: { mode: 'wrong-unit', unit: HEALTHY_UNIT }, qualities: ['bad:timeout'], code: 'GUARDIAN_E_MODBUS_TIMEOUT', backoff: true },
  { name: 'wrong unit id (an unknown one)', mode: { mode: 'wrong-unit', unit: 99 }, qualities: ['bad:timeout'], code: 'GUARDIAN_E_MODBUS_TIMEOUT', backoff: true },
  { name: 'truncated frame', mode: { mode: 'truncated', bytes: 6 }, qualities: ['bad:timeout'], code: 'GUARDIAN_E_MODBUS_TIMEOUT', backoff: true },
  { name: 'silent', mode: { mode: 'silent' }, qualities: ['bad:timeout'], code: 'GUARDIAN_E_MODBUS_TIMEOUT', backoff: true },
  { name: 'exception 4', mode: { mode: 'exception', code: 4 }, qualities: ['bad:exception:4'], code: 'GUARDIAN_E_MODBUS_EXCEPTION', backoff: false },
  { name: 'line noise', mode: { mode: 'noise', seed: 7 }, qualities: ['bad:timeout', 'bad:frame'], code: 'GUARDIAN_E_MODBUS_', backoff: true },
  // answers 1.25 timeouts late: while the device retries, a late answer to the
  // previous attempt must not be taken as the answer to the next request
  { name: 'late answers', mode: { mode: 'late', delayMs: BAD_TIMEOUT * 1.25 }, qualities: ['bad:timeout'], code: 'GUARDIAN_E_MODBUS_TIMEOUT', backoff: true },
];

function errField(line: LogLine, key: string): unknown {
  const err = line['err'];
  return line[key] ?? (typeof err === 'object' && err !== null ? (err as Record<string, unknown>)[key] : undefined);
}

const isWarning = (l: LogLine): boolean => l.level === 'warn' || Number(l.level) === 40;
const qualitiesOf = (r: PollResult): string[] => [...new Set(r.readings.map((x) => x.quality))];

async function faultCase(t: Test, run: RunningAdapter, device: BadDevice, c: Case): Promise<void> {
  const { logs } = run;
  const fromLog = logs.lines.length;
  const laterLog = (predicate: (l: LogLine) => boolean) => logs.waitFor((l) => logs.lines.indexOf(l) >= fromLog && predicate(l), 10000);
  const requestsBefore = (await device.stats()).requests[String(BAD_UNIT)] ?? 0;
  await device.setMode(c.mode);
  const fromResult = run.results.length;
  const isFault = (r: PollResult): boolean => r.device === 'bad' && r.readings.every((x) => (c.qualities as readonly string[]).includes(x.quality) && x.value === null);

  // detected: the bad unit's polls carry the fault's quality, twice in a row
  const first = await run.waitFor(isFault, { from: fromResult, what: `${c.name} on bad` });
  const second = await run.nextOf('bad');
  t.ok(isFault(second), `the next poll too: ${JSON.stringify(qualitiesOf(second))}`);
  t.comment(`${c.name}: ${JSON.stringify(qualitiesOf(first))}, then ${JSON.stringify(qualitiesOf(second))}`);

  // logged with its code, naming the device, as a warning
  const line = await laterLog((l) => String(codeOf(l)).startsWith(c.code) && errField(l, 'device') === 'bad');
  t.ok(isWarning(line), `logged ${String(codeOf(line))} at level ${String(line.level)}: ${String(line.msg)}`);
  if (c.backoff) {
    const backoff = await laterLog((l) => codeOf(l) === 'GUARDIAN_E_DEVICE_BACKOFF');
    t.equal(errField(backoff, 'device'), 'bad', 'GUARDIAN_E_DEVICE_BACKOFF names the device');
    t.match(run.adapter.deviceStats().find((s) => s.device === 'bad'), { backedOff: true, lastError: new RegExp(`^${c.code}`) });
  } else {
    t.match(run.adapter.deviceStats().find((s) => s.device === 'bad'), { backedOff: false });
  }

  if (!c.backoff) {
    // the device answers (an exception): not backed off, so it is polled at its interval; one
    // warning per request when its exception starts, debug lines while it persists
    const lines = logs.lines.slice(fromLog).filter((l) => codeOf(l) === c.code && errField(l, 'device') === 'bad');
    t.equal(lines.filter(isWarning).length, 2, 'one warning for each of the two requests');
    t.ok(lines.filter((l) => !isWarning(l)).length >= 2, 'then debug lines');
  }

  // every poll of the bad unit since the first faulty one is faulty too
  const during = run.of('bad').filter((r) => run.results.indexOf(r) >= run.results.indexOf(first));
  t.same(during.filter((r) => !isFault(r)).map(qualitiesOf), [], `all ${during.length} polls during the fault carry ${c.qualities.join(' or ')}`);
  t.ok(((await device.stats()).requests[String(BAD_UNIT)] ?? 0) > requestsBefore, 'the device was asked meanwhile');

  // recovered, with the same adapter
  await device.setMode({ mode: 'good' });
  const fromGood = run.results.length;
  const recovered = await run.waitFor((r) => r.device === 'bad' && allGood(r), { from: fromGood, what: `good from bad after ${c.name}` });
  t.same(Object.fromEntries(recovered.readings.map((x) => [x.point, x.value])), EXPECTED['bad'], 'good values again, the configured ones');
  if (c.backoff) {
    const line = await laterLog((l) => codeOf(l) === 'GUARDIAN_E_DEVICE_RECOVERED');
    t.equal(line['device'], 'bad', 'GUARDIAN_E_DEVICE_RECOVERED names the device');
  }
  t.match(run.adapter.deviceStats().find((s) => s.device === 'bad'), { backedOff: false });
}

void t.test('RTU: one unit times out, answers exceptions or garbage; each is detected, logged, reported and recovered from, and the other unit on the line is not disturbed', async (t) => {
  const pair = await ptyPair(t);
  const device = await startBadDevice(t, { path: pair.b, units: REGISTERS, badUnit: BAD_UNIT });
  const bus = busConfig({
    name: 'line', type: 'rtu', port: pair.a, reconnect: { initialMs: 100, maxMs: 400 },
    devices: [
      // two requests of two registers each (maxGap 0 keeps them apart)
      {
        name: 'bad', unitId: BAD_UNIT, pollIntervalMs: INTERVAL, timeoutMs: BAD_TIMEOUT, retries: 1, maxGap: 0, backoff: { initialMs: 300, maxMs: 600 },
        points: [holding('a0', 0), holding('a1', 1), holding('b0', 10), holding('b1', 11)],
      },
      { name: 'healthy', unitId: HEALTHY_UNIT, pollIntervalMs: INTERVAL, timeoutMs: 1000, retries: 0, points: [holding('h0', 0), holding('h1', 1)] },
    ],
  });
  const logs = captureLogger();
  const run = await runAdapter(t, bus, logs);
  const started = Date.now();
  for (const name of ['bad', 'healthy']) {
    const r = await run.waitFor((x) => x.device === name && allGood(x), { what: `first good poll of ${name}` });
    t.same(Object.fromEntries(r.readings.map((x) => [x.point, x.value])), EXPECTED[name], `${name} reads its configured values`);
  }

  for (const c of CASES) await t.test(c.name, (t) => faultCase(t, run, device, c));

  const elapsed = Date.now() - started;
  await run.stop();
  const stats = await device.stats();
  t.comment(`device stats: ${JSON.stringify(stats)}; ${run.results.length} polls in ${elapsed} ms`);

  // never a wrong value reported as good
  const wrong = run.results.flatMap((r) => r.readings
    .filter((x) => x.quality === 'good' && x.value !== EXPECTED[r.device]?.[x.point])
    .map((x) => ({ device: r.device, ts: r.ts, point: x.point, value: x.value })));
  t.same(wrong, [], 'every good reading is the configured value of its own device and point');

  // the healthy unit: never a bad reading, and it kept polling at (most of) its rate
  const healthy = run.of('healthy');
  const healthyBad = healthy.filter((r) => !allGood(r)).map((r) => ({ ts: r.ts, q: qualitiesOf(r) }));
  t.same(healthyBad, [], `the healthy unit never had a bad reading (${healthy.length} polls)`);
  t.match(run.adapter.deviceStats().find((s) => s.device === 'healthy'), { failures: 0, backedOff: false });
  // The line is half-duplex: while the bad unit's request waits for its timeout, nobody else
  // talks, so the healthy unit loses part of its rate. But it waits for one attempt at most,
  // never for the bad unit's retry, quiet period or backoff.
  const nominal = elapsed / INTERVAL;
  t.ok(healthy.length >= 0.5 * nominal, `healthy unit: ${healthy.length} polls in ${elapsed} ms, nominal ${Math.round(nominal)} at ${INTERVAL} ms`);
  const gaps = healthy.slice(1).map((r, i) => r.ts - (healthy[i]?.ts ?? r.ts));
  t.ok(Math.max(...gaps) < INTERVAL + BAD_TIMEOUT + 400, `longest gap between two polls of the healthy unit: ${Math.max(...gaps)} ms (interval ${INTERVAL}, the bad unit's timeout ${BAD_TIMEOUT})`);
  t.equal(logs.lines.filter((l) => errField(l, 'device') === 'healthy' && typeof codeOf(l) === 'string' && String(codeOf(l)).startsWith('GUARDIAN_E_MODBUS')).length, 0, 'nothing logged against the healthy unit');
});
