// A bus of type rtu-over-tcp (a serial-to-Ethernet converter: raw RTU frames,
// CRC included, on a TCP stream) against pymodbus serving RTU framing over TCP.
import t from 'tap';
import type { PointConfig } from '../../../src/config/types.js';
import { encodeRegisters } from '../../../src/downstream/modbus/codec.js';
import { captureLogger, codeOf } from '../../fixtures/logs.js';
import { freePort } from '../../fixtures/ports.js';
import { startModbusServer } from '../../fixtures/pymodbus.js';
import { busConfig, pointsOf, reading, runAdapter } from './harness.js';
import { bitSpecs, checkValues, deviceTables, layout, orderMatrix, singleRegisterSpecs } from './typemap.js';

void t.test('rtu-over-tcp: RTU frames over TCP read every type; exceptions and a silent unit are per device', async (t) => {
  const specs = [...bitSpecs('discrete'), ...singleRegisterSpecs('input').slice(0, 10), ...orderMatrix('holding', ['f32', 'u64', 'i64e'])];
  const { points } = layout(specs, 40);
  const port = await freePort();
  const bus = busConfig({
    name: 'gateway-port-1', type: 'rtu-over-tcp', host: '127.0.0.1', port, reconnect: { initialMs: 100, maxMs: 400 },
    devices: [
      { name: 'meter', unitId: 9, pollIntervalMs: 100, timeoutMs: 500, points: [...points, { name: 'undefined_reg', table: 'holding', address: 1000, type: 'uint16' }] },
      { name: 'silent', unitId: 10, pollIntervalMs: 100, timeoutMs: 200, retries: 0, backoff: { initialMs: 500, maxMs: 1000 }, points: [{ name: 'v', table: 'holding', address: 0, type: 'uint16' }] },
    ],
  });
  const server = await startModbusServer(t, { mode: 'rtu-over-tcp', port, units: { 9: deviceTables(bus, 'meter', specs) } });
  const logs = captureLogger();
  const run = await runAdapter(t, bus, logs);

  const first = await run.waitFor((r) => r.device === 'meter');
  checkValues(t, { ...first, readings: first.readings.filter((r) => r.point !== 'undefined_reg') }, specs);
  t.match(reading(first, 'undefined_reg'), { value: null, quality: 'bad:exception:2' }, 'an undefined address: exception 2 over RTU framing');

  const silent = await run.waitFor((r) => r.device === 'silent');
  t.match(reading(silent, 'v'), { value: null, quality: 'bad:timeout' }, 'a unit that never answers times out');
  await logs.waitFor((l) => codeOf(l) === 'GUARDIAN_E_DEVICE_BACKOFF' && l['device'] === 'silent');

  const f32 = pointsOf(bus, 'meter').get('holding_f32_DCBA') as PointConfig;
  await server.set(9, 'holding', f32.address, encodeRegisters(f32, 1013.25));
  t.equal(reading(await run.nextOf('meter', 2), 'holding_f32_DCBA').value, 1013.25, 'a changed value shows in the next poll');

  // the stream stays in step after the timeouts: the live device never saw a bad frame or timeout
  const meterBad = run.of('meter').flatMap((r) => r.readings).filter((x) => x.quality !== 'good' && x.point !== 'undefined_reg');
  t.same(meterBad, [], 'meter: every other reading good');
  t.equal(run.adapter.deviceStats().find((s) => s.device === 'meter')?.failures, 0);
});
