// ModbusBusAdapter on a real serial line: pymodbus as an RTU device on one end of
// a socat pty pair, the adapter on the other. Type coverage over RTU framing, a
// dead device that is backed off without starving the healthy ones and recovers
// when it answers again, and requests from several fast devices that never
// interleave on the line.
import t from 'tap';
import type { Test } from 'tap';
import type { PollResult } from '../../../src/core/types.js';
import { captureLogger, codeOf } from '../../fixtures/logs.js';
import { startModbusServer, type ModbusServer } from '../../fixtures/pymodbus.js';
import { ptyPair } from '../../fixtures/socat.js';
import { busConfig, reading, runAdapter, type RunningAdapter } from './harness.js';
import { bitSpecs, checkValues, deviceTables, layout, orderMatrix, singleRegisterSpecs, type PointSpec } from './typemap.js';

const RECONNECT = { initialMs: 100, maxMs: 400 };

// Why the type test waits for an answered poll instead of taking the first one: a
// poll whose request gets no answer within timeoutMs (after `retries` more attempts,
// each after a quiet period of one more timeout) is reported with every point
// bad:timeout. On a loaded 2-core machine the pymodbus process (or this one: libuv
// runs expired timers before it reads the pty) can be off the CPU for longer than
// that, and the first poll came back with all 63 points bad:timeout. The device
// timeout is now generous, and the test waits for the event "the device answered"
// (a poll with no line failure: timeout, garbled frame, port down) before it asserts
// exact decoding. A device that answers with wrong values (or a decoder that gets
// them wrong, bad:decode included), or never answers, still fails it.
const LINE_FAILURES: ReadonlySet<string> = new Set(['bad:timeout', 'bad:frame', 'bad:disconnected']);
const answered = (r: PollResult): boolean => r.device === 'boiler' && !r.readings.some((x) => LINE_FAILURES.has(x.quality));
const ANSWER_WAIT_MS = 60_000;

/** The type matrix on unit 17 of a pymodbus RTU device on a pty; `beforeAdapter` runs once the device is up, before the adapter starts. */
async function typeMatrixOnPty(t: Test, timeoutMs: number, beforeAdapter: (server: ModbusServer) => void = () => undefined): Promise<{ server: ModbusServer; run: RunningAdapter; specs: PointSpec[]; addresses: Map<string, number> }> {
  const specs = [
    ...bitSpecs('coil'), ...bitSpecs('discrete'),
    ...singleRegisterSpecs('holding'),
    ...orderMatrix('input', ['u32', 'i32', 'f32', 'u64', 'i64', 'f64', 'i64e', 'u64e']),
  ];
  const { points, addresses } = layout(specs, 100);
  const pair = await ptyPair(t);
  const bus = busConfig({
    name: 'rs485', type: 'rtu', port: pair.a, baudRate: 19200, parity: 'none', reconnect: RECONNECT,
    devices: [{ name: 'boiler', unitId: 17, pollIntervalMs: 100, timeoutMs, backoff: { initialMs: 100, maxMs: 400 }, points }],
  });
  const server = await startModbusServer(t, { mode: 'rtu', serialPath: pair.b, baudRate: 19200, units: { 17: deviceTables(bus, 'boiler', specs) } });
  beforeAdapter(server);
  return { server, run: await runAdapter(t, bus), specs, addresses };
}

void t.test('RTU on a pty: every type and order decodes exactly', async (t) => {
  const { server, run, specs, addresses } = await typeMatrixOnPty(t, 3000);
  const first = await run.waitFor(answered, { timeoutMs: ANSWER_WAIT_MS, what: 'answered by boiler' });
  t.comment(`polls before the first answered one: ${run.results.indexOf(first)}`);
  checkValues(t, first, specs);
  await server.set(17, 'holding', addresses.get('holding_u16x01off') ?? -1, [0]);
  await server.set(17, 'coils', addresses.get('coil_on') ?? -1, [false]);
  // the second answered poll after the sets started after them
  let count = 0;
  const after = await run.waitFor((r) => answered(r) && ++count === 2, { from: run.results.length, timeoutMs: ANSWER_WAIT_MS, what: '2nd answered poll after the sets' });
  checkValues(t, after, specs.map((s) => (s.point.name === 'coil_on' ? { ...s, expect: false } : s.point.name === 'holding_u16x01off' ? { ...s, expect: -1.5 } : s)));
});

void t.test('RTU on a pty: a device stalled past every retry (the busy machine, on purpose) is read exactly once it runs again', async (t) => {
  let pid = 0;
  // stopped before the adapter starts: its first poll cannot be served; an event (that poll's result), not a delay, decides when the device runs again
  const { server, run, specs } = await typeMatrixOnPty(t, 300, (s) => {
    pid = s.pid() ?? 0;
    if (pid === 0) throw new Error('modbus server has no pid');
    process.kill(pid, 'SIGSTOP');
  });
  t.teardown(() => { if (server.running()) process.kill(pid, 'SIGCONT'); });
  const timedOut = await run.waitFor((r) => r.device === 'boiler', { timeoutMs: ANSWER_WAIT_MS, what: 'first poll of the stalled device' });
  t.ok(timedOut.readings.length === specs.length && timedOut.readings.every((x) => x.quality === 'bad:timeout' && x.value === null),
    'the stalled device\'s poll: all points bad:timeout, value null (the reported failure)');
  process.kill(pid, 'SIGCONT');
  checkValues(t, await run.waitFor(answered, { from: run.results.indexOf(timedOut) + 1, timeoutMs: ANSWER_WAIT_MS, what: 'answered after SIGCONT' }), specs);
});

void t.test('RTU: a dead device is backed off, the others keep their rate, nothing interleaves; it recovers when it answers', async (t) => {
  const pair = await ptyPair(t);
  const point = (name: string, type = 'uint16'): Record<string, unknown> => ({ name, table: 'holding', address: 0, type });
  const INTERVAL = 100;
  const bus = busConfig({
    // 115,200 baud: a line that can carry two 10 ms devices (t3.5 is 1.75 ms; at 9600 baud a request and its answer take ~20 ms)
    name: 'line1', type: 'rtu', port: pair.a, baudRate: 115200, reconnect: RECONNECT,
    devices: [
      { name: 'healthy', unitId: 1, pollIntervalMs: INTERVAL, timeoutMs: 500, retries: 0, points: [point('v'), { ...point('w', 'int32'), address: 1 }] },
      { name: 'dead', unitId: 2, pollIntervalMs: INTERVAL, timeoutMs: 200, retries: 0, backoff: { initialMs: 500, maxMs: 2000 }, points: [point('v')] },
      { name: 'fast3', unitId: 3, pollIntervalMs: 10, timeoutMs: 500, points: [point('v'), { name: 'c', table: 'coil', address: 0, type: 'bool' }] },
      { name: 'fast4', unitId: 4, pollIntervalMs: 10, timeoutMs: 500, points: [point('v'), { name: 'i', table: 'input', address: 0, type: 'float32' }] },
    ],
  });
  const server = await startModbusServer(t, {
    mode: 'rtu', serialPath: pair.b, baudRate: 115200,
    units: {
      1: { holding: { 0: [1111, 0xffff, 0xfffe] } },
      3: { holding: { 0: [3333] }, coils: { 0: [true] } },
      4: { holding: { 0: [4444] }, input: { 0: [0x3fc0, 0x0000] } },
    },
  });
  const logs = captureLogger();
  const run = await runAdapter(t, bus, logs);

  // the dead device's first poll times out and it is backed off at once
  const backoffLine = await logs.waitFor((l) => codeOf(l) === 'GUARDIAN_E_DEVICE_BACKOFF');
  t.equal(backoffLine['device'], 'dead', 'GUARDIAN_E_DEVICE_BACKOFF names the dead device');

  // counted between two events, not over a wall-clock window (a busy machine slows every device
  // alike): the dead device's polls against the healthy one's (the same interval), and the fast
  // devices' against the healthy one's (a tenth of its interval)
  const at = { healthy: run.of('healthy').length, dead: run.of('dead').length, fast3: run.of('fast3').length, fast4: run.of('fast4').length };
  const HEALTHY_POLLS = 30;
  await run.waitFor((r) => r.device === 'healthy' && run.of('healthy').length - at.healthy >= HEALTHY_POLLS, { from: run.results.length, timeoutMs: 60_000, what: `${HEALTHY_POLLS} healthy polls` });
  const since = (device: keyof typeof at): PollResult[] => run.of(device).slice(at[device]);
  const healthyGood = since('healthy').filter((r) => r.readings.every((x) => x.quality === 'good')).length;
  t.equal(healthyGood, since('healthy').length, `healthy device: all ${healthyGood} polls good while the dead one times out`);
  t.ok(since('fast3').length >= since('healthy').length, `fast3 polled ${since('fast3').length} times while healthy was polled ${since('healthy').length} times`);
  t.ok(since('fast4').length >= since('healthy').length, `fast4 polled ${since('fast4').length} times while healthy was polled ${since('healthy').length} times`);
  const deadPolls = since('dead').length;
  t.ok(deadPolls <= since('healthy').length / 3,
    `dead device backed off: ${deadPolls} polls while the healthy device (same interval) was polled ${since('healthy').length} times`);
  t.ok(run.of('dead').every((r) => r.readings.every((x) => x.quality === 'bad:timeout' && x.value === null)), 'dead device: bad:timeout, value null');
  const deadStats = run.adapter.deviceStats().find((s) => s.device === 'dead');
  t.match(deadStats, { bus: 'line1', backedOff: true, lastError: /^GUARDIAN_E_MODBUS_TIMEOUT/ });
  t.equal(deadStats?.failures, deadStats?.polls, 'every poll of the dead device failed');
  for (const name of ['healthy', 'fast3', 'fast4']) {
    t.match(run.adapter.deviceStats().find((s) => s.device === name), { failures: 0, backedOff: false }, `${name} never failed`);
  }
  t.equal(logs.withCode('GUARDIAN_E_DEVICE_BACKOFF').length, 1, 'backoff logged once');

  // the device comes to life: it recovers at its next (backed-off) poll
  await server.addUnit(2, { holding: { 0: [2222] } });
  const recovered = await run.waitFor((r) => r.device === 'dead' && r.readings.every((x) => x.quality === 'good'), { from: run.results.length, timeoutMs: 10000, what: 'good from dead' });
  t.equal(reading(recovered, 'v').value, 2222);
  const line = await logs.waitFor((l) => codeOf(l) === 'GUARDIAN_E_DEVICE_RECOVERED');
  t.equal(line['device'], 'dead', 'GUARDIAN_E_DEVICE_RECOVERED names the device');
  t.match(run.adapter.deviceStats().find((s) => s.device === 'dead'), { backedOff: false });
  t.notOk('lastError' in (run.adapter.deviceStats().find((s) => s.device === 'dead') ?? {}), 'lastError cleared');
  // back at its interval: five more polls, all good
  for (let i = 0; i < 5; i++) t.equal(reading(await run.nextOf('dead'), 'v').value, 2222);

  // serialization: no frame errors, and every good reading is its own unit's value
  const frames = run.results.flatMap((r) => r.readings.filter((x) => x.quality === 'bad:frame'));
  t.equal(frames.length, 0, `no bad:frame in ${run.results.length} polls`);
  const own: Record<string, number> = { healthy: 1111, dead: 2222, fast3: 3333, fast4: 4444 };
  const mixed = run.results.filter((r) => r.readings.some((x) => x.point === 'v' && x.quality === 'good' && x.value !== own[r.device]));
  t.same(mixed, [], 'no device ever got another unit\'s answer');
  const others = run.results.filter((r) => r.device !== 'dead').flatMap((r) => r.readings).filter((x) => x.quality !== 'good');
  t.same(others, [], 'the live devices never had a bad reading');
  t.ok(run.of('fast3').every((r) => reading(r, 'c').value === true) && run.of('fast4').every((r) => reading(r, 'i').value === 1.5), 'coil and float32 of the fast devices intact');
  t.equal(logs.withCode('GUARDIAN_E_MODBUS_FRAME').length, 0);
});
