// An unplugged serial device: the socat pty pair disappears under a running
// ModbusBusAdapter and is re-created at the same paths. Polls report bad quality
// while it is gone and good values again once it is back, without restarting the
// adapter: the arbiter drops the dead transport and reopens the port with backoff.
import t from 'tap';
import { captureLogger, codeOf } from '../../fixtures/logs.js';
import { startModbusServer } from '../../fixtures/pymodbus.js';
import { ptyPair } from '../../fixtures/socat.js';
import { allBad, allGood, busConfig, runAdapter } from './harness.js';
import { checkValues, deviceTables, layout, orderMatrix, singleRegisterSpecs } from './typemap.js';

void t.test('RTU: the serial device is unplugged and plugged back in; polling recovers by itself', async (t) => {
  const specs = [...singleRegisterSpecs('holding').slice(0, 6), ...orderMatrix('input', ['f32', 'u64'])];
  const { points } = layout(specs);
  const pair = await ptyPair(t);
  const bus = busConfig({
    name: 'rs485', type: 'rtu', port: pair.a, reconnect: { initialMs: 100, maxMs: 400 },
    devices: [{ name: 'pump', unitId: 5, pollIntervalMs: 50, timeoutMs: 300, retries: 0, backoff: { initialMs: 100, maxMs: 400 }, points }],
  });
  const server = await startModbusServer(t, { mode: 'rtu', serialPath: pair.b, units: { 5: deviceTables(bus, 'pump', specs) } });
  const logs = captureLogger();
  const run = await runAdapter(t, bus, logs);
  checkValues(t, await run.waitFor((r) => r.device === 'pump'), specs);

  for (let round = 1; round <= 2; round++) {
    await pair.kill(); // both ends of the pty pair vanish
    const down = await run.waitFor(allBad, { from: run.results.length, what: 'bad while unplugged' });
    const qualities = [...new Set(down.readings.map((r) => r.quality))];
    t.ok(qualities.every((q) => q === 'bad:disconnected' || q === 'bad:timeout'), `round ${round}: bad while unplugged (${qualities.join(', ')})`);
    // the port cannot be reopened while the path is gone: disconnected, not stuck
    await run.waitFor((r) => r.readings.every((x) => x.quality === 'bad:disconnected'), { from: run.results.length, what: 'disconnected' });
    t.match(run.adapter.deviceStats()[0], { backedOff: true, lastError: /^GUARDIAN_E_MODBUS_CONNECT/ }, `round ${round}: backed off`);

    await pair.start(); // plugged back in at the same path
    await server.waitSerialOpen();
    const back = await run.waitFor(allGood, { from: run.results.length, timeoutMs: 15000, what: 'good after replug' });
    checkValues(t, back, specs);
    t.match(run.adapter.deviceStats()[0], { backedOff: false }, `round ${round}: recovered`);
    t.equal(logs.withCode('GUARDIAN_E_DEVICE_RECOVERED').length, round, `round ${round}: recovery logged`);
    t.equal(logs.withCode('GUARDIAN_E_DEVICE_BACKOFF').length, round, `round ${round}: backoff logged once per outage`);
  }
  t.ok(logs.lines.some((l) => /bus rs485 reopened/.test(String(l.msg))), 'the bus reopened its port');
  t.ok(logs.lines.some((l) => codeOf(l) === 'GUARDIAN_E_MODBUS_CONNECT'), 'the failed reopen attempts were logged with their code');
  t.equal(run.results.flatMap((r) => r.readings).filter((x) => x.quality === 'bad:frame').length, 0, 'no frame errors');
});
