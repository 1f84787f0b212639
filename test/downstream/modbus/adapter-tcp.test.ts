// ModbusBusAdapter against a real Modbus TCP device (pymodbus): every point type
// in every byte/word order on all four tables, exception responses (alone and
// inside a coalesced request), live value changes, and the loss and return of
// the TCP peer without restarting the adapter.
import t from 'tap';
import { encodeRegisters } from '../../../src/downstream/modbus/codec.js';
import type { PointConfig } from '../../../src/config/types.js';
import { captureLogger, codeOf } from '../../fixtures/logs.js';
import { freePort, sleep } from '../../fixtures/ports.js';
import { startModbusServer } from '../../fixtures/pymodbus.js';
import { allBad, allGood, busConfig, pointsOf, reading, runAdapter, summarize } from './harness.js';
import { bitSpecs, checkValues, deviceTables, layout, orderMatrix, singleRegisterSpecs, type PointSpec } from './typemap.js';

const FAST = { pollIntervalMs: 100, timeoutMs: 500, retries: 0, backoff: { initialMs: 100, maxMs: 400 } };
const RECONNECT = { initialMs: 100, maxMs: 400 };

/** Every type, both byte orders, both word orders, scale/offset, on all four tables. */
const SPECS: readonly PointSpec[] = [
  ...bitSpecs('coil'),
  ...bitSpecs('discrete'),
  ...singleRegisterSpecs('input'),
  ...orderMatrix('input', ['u32', 'f32', 'u64', 'i64e', 'f64e']),
  ...singleRegisterSpecs('holding'),
  ...orderMatrix('holding'),
];

void t.test('Modbus TCP: every type and order decodes exactly; set() shows in the next poll', async (t) => {
  const port = await freePort();
  const { points } = layout(SPECS, 10);
  const bus = busConfig({
    name: 'plc', type: 'tcp', host: '127.0.0.1', port, reconnect: RECONNECT,
    devices: [{ name: 'all-types', unitId: 1, ...FAST, points }],
  });
  const server = await startModbusServer(t, { mode: 'tcp', port, units: { 1: deviceTables(bus, 'all-types', SPECS) } });
  const run = await runAdapter(t, bus);

  const first = await run.waitFor((r) => r.device === 'all-types', { what: 'from all-types' });
  t.ok(SPECS.length > 100, `${SPECS.length} points`);
  checkValues(t, first, SPECS);
  const holding = pointsOf(bus, 'all-types');
  // the holding points sit in more than one 125-register request; all four tables are read
  t.ok([...holding.values()].some((p) => p.table === 'holding' && p.address > 135), 'holding map spans more than one request');

  // change values on the device: the first poll that starts after set() reports them
  const f32 = holding.get('holding_f32e_CDAB') as PointConfig;
  const u64 = holding.get('holding_u64e_DCBA') as PointConfig;
  const str = holding.get('holding_strenc') as PointConfig;
  const coil = holding.get('coil_on') as PointConfig;
  await server.set(1, 'holding', f32.address, encodeRegisters(f32, -0.125));
  await server.set(1, 'holding', u64.address, encodeRegisters(u64, 12345678901234567890n));
  await server.set(1, 'holding', str.address, encodeRegisters(str, 'xyz'));
  await server.set(1, 'coils', coil.address, [false]);
  const next = await run.nextOf('all-types', 2); // #1 may have started before the sets
  t.equal(reading(next, 'holding_f32e_CDAB').value, -0.125);
  t.equal(reading(next, 'holding_u64e_DCBA').value, '12345678901234567890');
  t.equal(reading(next, 'holding_strenc').value, 'xyz', 'a shorter string: NUL padding cut');
  t.equal(reading(next, 'coil_on').value, false);
  t.ok(allGood(next), 'still all good');
  t.equal(run.adapter.deviceStats()[0]?.failures, 0, 'no failed polls');
  t.equal(run.logs.lines.filter((l) => Number(l.level) >= 40).length, 0, 'no warnings logged');
});

void t.test('Modbus TCP: exception 2 marks only the undefined points, alone or inside a coalesced request', async (t) => {
  const port = await freePort();
  const bus = busConfig({
    name: 'plc', type: 'tcp', host: '127.0.0.1', port, reconnect: RECONNECT,
    devices: [
      {
        // maxGap 0: every point its own request
        name: 'separate', unitId: 2, ...FAST, maxGap: 0,
        points: [
          { name: 'ok_h', table: 'holding', address: 0, type: 'uint16' },
          { name: 'missing_h', table: 'holding', address: 50, type: 'uint16' },
          { name: 'missing_i', table: 'input', address: 3, type: 'int32' },
          { name: 'missing_c', table: 'coil', address: 7, type: 'bool' },
          { name: 'ok_c', table: 'coil', address: 0, type: 'bool' },
          { name: 'ok_i', table: 'input', address: 0, type: 'uint16', scale: 0.1 },
        ],
      },
      {
        // maxGap 100: one request per table, each containing the undefined address
        name: 'coalesced', unitId: 3, ...FAST, maxGap: 100,
        points: [
          { name: 'a', table: 'holding', address: 0, type: 'uint16' },
          { name: 'b', table: 'holding', address: 1, type: 'int32' },
          { name: 'hole', table: 'holding', address: 4, type: 'uint16' },
          { name: 'c', table: 'holding', address: 5, type: 'float32' },
          { name: 'd', table: 'holding', address: 9, type: 'uint16' },
          { name: 'c0', table: 'coil', address: 0, type: 'bool' },
          { name: 'c1', table: 'coil', address: 1, type: 'bool' },
          { name: 'chole', table: 'coil', address: 2, type: 'bool' },
          { name: 'c3', table: 'coil', address: 3, type: 'bool' },
        ],
      },
    ],
  });
  const c = pointsOf(bus, 'coalesced').get('c') as PointConfig;
  await startModbusServer(t, {
    mode: 'tcp', port,
    units: {
      2: { holding: { 0: [7] }, input: { 0: [215] }, coils: { 0: [true] } },
      // everything from 0 to 9 except holding 4 and coil 2
      3: {
        holding: { 0: [11, 0xffff, 0xfff6, 0], 5: [...encodeRegisters(c, 2.5), 0, 0, 99] },
        coils: { 0: [true, false], 3: [true] },
      },
    },
  });
  const logs = captureLogger();
  const run = await runAdapter(t, bus, logs);

  const sep = await run.waitFor((r) => r.device === 'separate');
  t.same(summarize(sep), {
    values: { ok_c: true, missing_c: null, missing_i: null, ok_i: 21.5, ok_h: 7, missing_h: null },
    qualities: { ok_c: 'good', missing_c: 'bad:exception:2', missing_i: 'bad:exception:2', ok_i: 'good', ok_h: 'good', missing_h: 'bad:exception:2' },
  }, 'undefined addresses: exception 2, value null; the rest good');

  const co = await run.waitFor((r) => r.device === 'coalesced');
  t.same(summarize(co), {
    values: { c0: true, c1: false, chole: null, c3: true, a: 11, b: -10, hole: null, c: 2.5, d: 99 },
    qualities: { c0: 'good', c1: 'good', chole: 'bad:exception:2', c3: 'good', a: 'good', b: 'good', hole: 'bad:exception:2', c: 'good', d: 'good' },
  }, 'the coalesced requests are split in the same poll: neighbours stay good');
  const split = logs.lines.filter((l) => l['device'] === 'coalesced' && /illegal address inside a coalesced request/.test(String(l.msg)));
  t.equal(split.length, 2, 'split once per table (holding and coil)');

  // later polls keep the split plan: same result, no new split
  const later = await run.nextOf('coalesced', 2);
  t.same(summarize(later), summarize(co), 'later polls: the same readings');
  t.equal(logs.lines.filter((l) => /illegal address inside/.test(String(l.msg))).length, 2, 'no further splits');

  // an exception is an answer: the devices are not failing or backed off
  for (const s of run.adapter.deviceStats()) {
    t.match(s, { failures: 0, backedOff: false }, `${s.device} not backed off`);
  }
  t.equal(logs.withCode('GUARDIAN_E_DEVICE_BACKOFF').length, 0);
});

void t.test('Modbus TCP: the device goes away and comes back on the same port; the adapter recovers by itself', async (t) => {
  const port = await freePort();
  const specs = [...bitSpecs('coil'), ...singleRegisterSpecs('holding').slice(0, 8), ...orderMatrix('input', ['u64', 'f64'])];
  const { points } = layout(specs);
  const bus = busConfig({
    name: 'plc', type: 'tcp', host: '127.0.0.1', port, reconnect: RECONNECT,
    devices: [{ name: 'meter', unitId: 1, ...FAST, points }],
  });
  const server = await startModbusServer(t, { mode: 'tcp', port, units: { 1: deviceTables(bus, 'meter', specs) } });
  const logs = captureLogger();
  const run = await runAdapter(t, bus, logs);
  checkValues(t, await run.waitFor((r) => r.device === 'meter'), specs);

  await server.kill();
  const down = await run.waitFor((r) => allBad(r), { from: run.results.length, what: 'with every point bad' });
  const qualities = new Set(down.readings.map((r) => r.quality));
  t.ok([...qualities].every((q) => q === 'bad:disconnected' || q === 'bad:timeout'), `bad quality while down: ${[...qualities].join(', ')}`);
  t.ok(down.readings.every((r) => r.value === null), 'no values while down');
  // a few more failed polls: the bus is reopened with backoff, the device backed off
  const downFrom = run.results.length;
  await run.waitFor((r) => allBad(r) && r.readings.every((x) => x.quality === 'bad:disconnected'), { from: downFrom, what: 'disconnected' });
  t.match(run.adapter.deviceStats()[0], { backedOff: true, lastError: /GUARDIAN_E_MODBUS_(CONNECT|TIMEOUT)/ });
  t.equal(logs.withCode('GUARDIAN_E_DEVICE_BACKOFF').length, 1, 'backoff logged once');

  await server.start(); // same port, the initial map
  const back = await run.waitFor(allGood, { from: run.results.length, timeoutMs: 15000, what: 'all good again' });
  checkValues(t, back, specs);
  await logs.waitFor((l) => codeOf(l) === 'GUARDIAN_E_DEVICE_RECOVERED' && l['device'] === 'meter');
  t.ok(logs.lines.some((l) => /bus plc reopened/.test(String(l.msg))), 'the bus transport was reopened');
  t.match(run.adapter.deviceStats()[0], { device: 'meter', bus: 'plc', backedOff: false });
  // polling goes on at its interval after the recovery
  checkValues(t, await run.nextOf('meter', 3), specs);
});

void t.test('Modbus TCP: stop() completes while the peer is gone', async (t) => {
  const port = await freePort();
  const bus = busConfig({
    name: 'plc', type: 'tcp', host: '127.0.0.1', port, reconnect: RECONNECT,
    // a long interval: after the first poll the bus sits idle with its connection open
    devices: [{ name: 'slow', unitId: 1, ...FAST, pollIntervalMs: 60000, points: [{ name: 'v', table: 'holding', address: 0, type: 'uint16' }] }],
  });
  const server = await startModbusServer(t, { mode: 'tcp', port, units: { 1: { holding: { 0: [5] } } } });
  const run = await runAdapter(t, bus);
  t.equal(reading(await run.waitFor(() => true), 'v').value, 5);
  await server.kill(); // the idle connection is closed by the peer
  // Wait until this process has seen the close: the adapter's socket is the only
  // TCP socket here (the server fixture talks over pipes).
  const deadline = Date.now() + 5000;
  while (process.getActiveResourcesInfo().includes('TCPSocketWrap')) {
    if (Date.now() > deadline) throw new Error('the client socket did not close after the server was killed');
    await sleep(10);
  }
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    run.stop().then(() => 'stopped'),
    new Promise<string>((resolve) => { timer = setTimeout(() => resolve('stop() still pending after 5 s'), 5000); }),
  ]);
  clearTimeout(timer);
  t.equal(outcome, 'stopped');
});
