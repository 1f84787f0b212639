// Device commands through ModbusBusAdapter against a real Modbus TCP device (pymodbus):
// allowed writes reach the device in one request and are read back; writes outside
// the policy's table, range, value or rate — and malformed ones — are refused before
// anything is sent (the device's registers and its request counter do not move);
// a device that clamps a setpoint is caught by the read-back.
import t, { type Test } from 'tap';
import type { PointConfig } from '../../../src/config/types.js';
import type { GuardianError } from '../../../src/core/errors.js';
import { encodeRegisters } from '../../../src/downstream/modbus/codec.js';
import { parseManifest } from '../../../src/firewall/manifest.js';
import { WritePolicy } from '../../../src/firewall/write-policy.js';
import { LoggedWriteGate } from '../../../src/daemon/command-router.js';
import { captureLogger } from '../../fixtures/logs.js';
import { freePort } from '../../fixtures/ports.js';
import { startModbusServer, type ModbusServer } from '../../fixtures/pymodbus.js';
import { busConfig, pointsOf, runAdapter, type RunningAdapter } from './harness.js';

const SLOW = { pollIntervalMs: 600_000, timeoutMs: 300, retries: 0 };

const MANIFEST = {
  SchemaVersion: 1,
  Name: 'commands-test',
  ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f',
  Capabilities: { AllowedConnections: ['127.0.0.1'] },
  Guardian: {
    WritePolicy: {
      Devices: {
        press: {
          Allow: [
            { Table: 'holding', Addresses: [100, 101], Min: 0, Max: 250 },
            { Table: 'holding', Addresses: 102, Min: -50, Max: 50 },
            { Table: 'holding', Addresses: [104, 105] },
            { Table: 'holding', Addresses: [200, 203] },
            { Table: 'holding', Addresses: 30 },
            { Table: 'holding', Addresses: 40, Verify: false },
            { Table: 'holding', Addresses: 500 },
            { Table: 'coil', Addresses: 3 },
          ],
        },
        valve: { Allow: [{ Table: 'coil', Addresses: [0, 7] }], MaxWritesPerMinute: 2 },
        ghost: { Allow: [{ Table: 'holding', Addresses: [0, 9] }] },
      },
    },
  },
};

const HOLDING_START = { 100: Array<number>(12).fill(0), 30: [0], 40: [0], 120: [0x4142, 0x4344], 200: [0, 0, 0, 0] };

interface Rig {
  readonly server: ModbusServer;
  readonly run: RunningAdapter;
  readonly logs: ReturnType<typeof captureLogger>;
  readonly points: ReadonlyMap<string, PointConfig>;
  cmd(device: string, name: string, payload: Record<string, unknown>): Promise<unknown>;
  fail(device: string, name: string, payload: Record<string, unknown>): Promise<GuardianError>;
  /** Every table of both units, and the server's request counter: what a refused command must not change. */
  snapshot(): Promise<unknown>;
}

async function rig(t: Test): Promise<Rig> {
  const port = await freePort();
  const server = await startModbusServer(t, {
    mode: 'tcp', port,
    units: {
      1: { holding: HOLDING_START, coils: { 0: Array<boolean>(8).fill(false) }, input: { 0: [215] } },
      2: { coils: { 0: Array<boolean>(8).fill(false) }, holding: { 0: [7] } },
      3: { holding: { 0: [1] } },
    },
    clamp: [{ unit: 1, address: 30, max: 100 }, { unit: 1, address: 40, max: 5 }],
  });
  const bus = busConfig({
    name: 'line', type: 'tcp', host: '127.0.0.1', port,
    devices: [
      {
        name: 'press', unitId: 1, ...SLOW,
        points: [
          { name: 'sp', table: 'holding', address: 100, type: 'float32' },
          { name: 'speed', table: 'holding', address: 102, type: 'int16', scale: 0.1 },
          { name: 'count', table: 'holding', address: 104, type: 'uint32', wordOrder: 'little' },
          { name: 'status', table: 'holding', address: 110, type: 'bit', bit: 0 },
          { name: 'label', table: 'holding', address: 120, type: 'string', length: 2 },
          { name: 'limit', table: 'holding', address: 30, type: 'uint16' },
          { name: 'temp', table: 'input', address: 0, type: 'int16', scale: 0.1 },
          { name: 'run', table: 'coil', address: 3, type: 'bool' },
        ],
      },
      { name: 'valve', unitId: 2, ...SLOW, points: [{ name: 'open', table: 'coil', address: 0, type: 'bool' }, { name: 'level', table: 'holding', address: 0, type: 'uint16' }] },
      { name: 'meter', unitId: 3, ...SLOW, points: [{ name: 'kwh', table: 'holding', address: 0, type: 'uint16' }] },
      { name: 'ghost', unitId: 9, ...SLOW, points: [{ name: 'x', table: 'holding', address: 0, type: 'uint16' }] },
    ],
  });
  const logs = captureLogger();
  const gate = new LoggedWriteGate(WritePolicy.fromManifest(parseManifest(JSON.stringify(MANIFEST))), logs.log);
  const run = await runAdapter(t, bus, logs, gate);
  for (const device of ['press', 'valve', 'meter']) await run.waitFor((r) => r.device === device, { what: `first poll of ${device}` });
  await run.waitFor((r) => r.device === 'ghost' && r.readings.every((x) => x.quality === 'bad:timeout'), { what: 'ghost timed out' });
  const cmd = (device: string, name: string, payload: Record<string, unknown>): Promise<unknown> =>
    run.adapter.command({ device, name, payload, requester: 'test:operator' });
  return {
    server, run, logs, points: pointsOf(bus, 'press'), cmd,
    fail: (device, name, payload) => cmd(device, name, payload).then(
      (data) => { throw new Error(`expected a refusal, got ${JSON.stringify(data)}`); },
      (err: unknown) => err as GuardianError,
    ),
    snapshot: async () => ({
      press: {
        holding: await Promise.all([server.get(1, 'holding', 100, 12), server.get(1, 'holding', 30, 1), server.get(1, 'holding', 120, 2), server.get(1, 'holding', 200, 4)]),
        coils: await server.get(1, 'coils', 0, 8),
      },
      valve: { coils: await server.get(2, 'coils', 0, 8), holding: await server.get(2, 'holding', 0, 1) },
      meter: await server.get(3, 'holding', 0, 1),
      requests: await server.requests(),
    }),
  };
}

void t.test('allowed writes: one request each (a 32-bit value is one FC16), read back, decoded', async (t) => {
  const r = await rig(t);
  const sp = r.points.get('sp') as PointConfig;
  let before = await r.server.requests();
  t.same(await r.cmd('press', 'write', { point: 'sp', value: 21.7 }), { table: 'holding', address: 100, values: encodeRegisters(sp, 21.7), verified: true, point: 'sp', value: 21.7 });
  t.same(await r.server.get(1, 'holding', 100, 2), encodeRegisters(sp, 21.7), 'the float32 is on the device');
  t.equal(await r.server.requests() - before, 2, 'one FC16 for both registers, one read-back');

  before = await r.server.requests();
  t.match(await r.cmd('press', 'write', { point: 'speed', value: -12.3 }), { values: [65536 - 123], verified: true, value: -12.3 }, 'scale undone: -12.3 / 0.1 = -123');
  t.same(await r.server.get(1, 'holding', 102, 1), [65536 - 123]);
  t.equal(await r.server.requests() - before, 2, 'FC6 and a read-back');

  t.match(await r.cmd('press', 'write', { point: 'count', value: 70000 }), { values: [70000 & 0xffff, 1], value: 70000 }, 'uint32, low word first');
  t.same(await r.server.get(1, 'holding', 104, 2), [70000 & 0xffff, 1]);

  t.match(await r.cmd('press', 'write', { point: 'run', value: true }), { table: 'coil', address: 3, values: [true], value: true });
  t.same(await r.server.get(1, 'coils', 0, 8), [false, false, false, true, false, false, false, false]);

  before = await r.server.requests();
  t.same(await r.cmd('press', 'write', { table: 'holding', address: 200, values: [1, 2, 65535] }), { table: 'holding', address: 200, values: [1, 2, 65535], verified: true });
  t.same(await r.server.get(1, 'holding', 200, 4), [1, 2, 65535, 0]);
  t.equal(await r.server.requests() - before, 2, 'raw registers: one FC16 and a read-back');

  t.same(await r.cmd('valve', 'write', { table: 'coil', address: 2, values: [true, true, false, true] }), { table: 'coil', address: 2, values: [true, true, false, true], verified: true }, 'FC15');
  t.same(await r.server.get(2, 'coils', 0, 8), [false, false, true, true, false, true, false, false]);

  t.same(await r.cmd('press', 'read', { point: 'temp' }), { point: 'temp', value: 21.5 }, 'read: a point, now');

  const allowed = r.logs.lines.filter((l) => l['decision'] === 'allowed');
  t.equal(allowed.length, 6, 'every allowed write is logged');
  t.match(allowed[0], { requester: 'test:operator', device: 'press', table: 'holding', address: 100, count: 2, kind: 'point', point: 'sp', data: encodeRegisters(sp, 21.7), written: [{ point: 'sp', address: 100, count: 2, value: 21.7 }] }, 'who asked, what goes on the wire and what it means');
});

void t.test('refused writes never reach the wire: table, range, value, raw around limits, no policy, rate', async (t) => {
  const r = await rig(t);
  const sp = r.points.get('sp') as PointConfig;
  await r.cmd('valve', 'write', { point: 'open', value: true });
  await r.cmd('valve', 'write', { point: 'open', value: false });
  const before = await r.snapshot();
  const refused: [string, Record<string, unknown>, string, RegExp][] = [
    ['press', { point: 'sp', value: 250.5 }, 'value', /value 250.5 is above the maximum 250/],
    ['press', { point: 'sp', value: -1 }, 'value', /value -1 is below the minimum 0/],
    ['press', { point: 'speed', value: 50.1 }, 'value', /above the maximum 50/],
    ['press', { table: 'holding', address: 100, values: encodeRegisters(sp, 300) }, 'value', /value 300 is above the maximum 250/],
    ['press', { table: 'holding', address: 101, values: [0] }, 'value', /point sp \(holding 100-101\) has value limits \(holding 100-101\) and is only partly written/],
    ['press', { table: 'holding', address: 99, values: [1] }, 'range', /holding 99 is outside the allowed/],
    ['press', { table: 'holding', address: 203, values: [1, 2] }, 'range', /holding 203-204 is outside/],
    ['press', { point: 'label', value: 'ZZZZ' }, 'range', /holding 120-121 is outside/],
    ['press', { table: 'coil', address: 4, values: [true] }, 'range', /coil 4 is outside the allowed 3/],
    ['valve', { point: 'level', value: 1 }, 'table', /no holding writes are allowed/],
    ['meter', { point: 'kwh', value: 2 }, 'no-policy', /device 'meter' may not be written/],
    ['valve', { point: 'open', value: true }, 'rate', /more than 2 writes a minute/],
  ];
  for (const [device, payload, reason, message] of refused) {
    const err = await r.fail(device, 'write', payload);
    t.match(err, { code: 'GUARDIAN_E_WRITE_DENIED', message, context: { device, reason } }, `${device} ${JSON.stringify(payload)}: ${reason}`);
  }
  t.same(await r.snapshot(), before, 'no register or coil changed, and the device received no request at all');
  const denied = r.logs.lines.filter((l) => l['decision'] === 'denied');
  t.equal(denied.length, refused.length, 'every refusal is logged');
  t.match(denied[0], { level: 40, code: 'GUARDIAN_E_WRITE_DENIED', reason: 'value', requester: 'test:operator', device: 'press', point: 'sp', written: [{ point: 'sp', value: 250.5 }], msg: /write denied: device 'press': value 250.5 is above the maximum 250/ });
});

void t.test('malformed and unknown commands are refused before the policy and the wire', async (t) => {
  const r = await rig(t);
  const before = await r.snapshot();
  const bad: [string, string, Record<string, unknown>, string, RegExp][] = [
    ['press', 'write', { point: 'status', value: 1 }, 'GUARDIAN_E_COMMAND_INVALID', /one bit of a register: value must be true or false/],
    ['press', 'write', { point: 'temp', value: 1 }, 'GUARDIAN_E_COMMAND_INVALID', /in the input table, which is read-only/],
    ['press', 'write', { point: 'speed', value: 1.25 }, 'GUARDIAN_E_COMMAND_INVALID', /1.25 is not a multiple of its scale 0.1/],
    ['press', 'write', { point: 'sp', value: 'hot' }, 'GUARDIAN_E_COMMAND_INVALID', /point sp: a float32 value must be a JSON number \(decimal strings only for int64\/uint64\)/],
    ['press', 'write', { point: 'sp', value: '50' }, 'GUARDIAN_E_COMMAND_INVALID', /point sp: a float32 value must be a JSON number/],
    ['press', 'write', { point: 'speed', value: '5' }, 'GUARDIAN_E_COMMAND_INVALID', /point speed: a int16 value must be a JSON number/],
    ['press', 'write', { point: 'label', value: 5 }, 'GUARDIAN_E_COMMAND_INVALID', /point label is string: value must be a string/],
    ['press', 'write', { point: 'run', value: 1 }, 'GUARDIAN_E_COMMAND_INVALID', /is a coil: value must be true or false/],
    ['press', 'write', { point: 'sp' }, 'GUARDIAN_E_COMMAND_INVALID', /write: value: is required with 'point'/],
    ['press', 'write', { point: 'sp', value: 1, force: true }, 'GUARDIAN_E_COMMAND_INVALID', /write: force: unknown key/],
    ['press', 'write', {}, 'GUARDIAN_E_COMMAND_INVALID', /give either \{point, value\} or \{table, address, values\}/],
    ['press', 'write', { point: 'sp', value: 1, table: 'holding', address: 100, values: [1] }, 'GUARDIAN_E_COMMAND_INVALID', /not both/],
    ['press', 'write', { table: 'holding', address: 200, values: [70000] }, 'GUARDIAN_E_COMMAND_INVALID', /integers 0-65535/],
    ['press', 'write', { table: 'holding', address: 200, values: [true] }, 'GUARDIAN_E_COMMAND_INVALID', /integers 0-65535/],
    ['press', 'write', { table: 'coil', address: 3, values: [1] }, 'GUARDIAN_E_COMMAND_INVALID', /coil values must be true or false/],
    ['press', 'write', { table: 'holding', address: 200, values: Array<number>(124).fill(1) }, 'GUARDIAN_E_COMMAND_INVALID', /at most 123 registers/],
    ['press', 'write', { table: 'holding', address: 65535, values: [1, 2] }, 'GUARDIAN_E_COMMAND_INVALID', /runs past address 65535/],
    ['press', 'write', { table: 'input', address: 0, values: [1] }, 'GUARDIAN_E_COMMAND_INVALID', /table: must be one of 'coil', 'holding'/],
    ['press', 'write', { point: 'nope', value: 1 }, 'GUARDIAN_E_COMMAND_UNKNOWN', /device press has no point 'nope'/],
    ['press', 'reboot', {}, 'GUARDIAN_E_COMMAND_UNKNOWN', /device press has no command 'reboot' \(commands: write, read\)/],
    ['nobody', 'write', { point: 'sp', value: 1 }, 'GUARDIAN_E_COMMAND_UNKNOWN', /no device 'nobody'/],
  ];
  for (const [device, name, payload, code, message] of bad) {
    t.match(await r.fail(device, name, payload), { code, message }, `${name} ${JSON.stringify(payload).slice(0, 80)}`);
  }
  t.same(await r.snapshot(), before, 'nothing was sent');
  t.equal(r.logs.lines.filter((l) => l['decision'] !== undefined).length, 0, 'none of them got as far as the policy');
});

void t.test('read-back: a device that clamps the value is reported; Verify false skips the check', async (t) => {
  const r = await rig(t);
  t.match(await r.fail('press', 'write', { point: 'limit', value: 150 }), {
    code: 'GUARDIAN_E_WRITE_VERIFY', message: /accepted the write to holding 30 but reads back \[100\] instead of \[150\]/, context: { written: '[150]', readBack: '[100]' },
  });
  t.same(await r.server.get(1, 'holding', 30, 1), [100], 'the device clamped it');
  const before = await r.server.requests();
  t.same(await r.cmd('press', 'write', { table: 'holding', address: 40, values: [9] }), { table: 'holding', address: 40, values: [9], verified: false });
  t.equal(await r.server.requests() - before, 1, 'no read-back request');
  t.same(await r.server.get(1, 'holding', 40, 1), [5]);
});

void t.test('device failures: exception, silence; the write is not retried', async (t) => {
  const r = await rig(t);
  let before = await r.server.requests();
  t.match(await r.fail('press', 'write', { table: 'holding', address: 500, values: [1] }), { code: 'GUARDIAN_E_MODBUS_EXCEPTION', context: { exception: 2 } }, 'an address the device does not have');
  t.equal(await r.server.requests() - before, 1, 'sent once');
  before = await r.server.requests();
  t.match(await r.fail('ghost', 'write', { point: 'x', value: 1 }), { code: 'GUARDIAN_E_MODBUS_TIMEOUT' }, 'a unit that never answers');
  t.equal(await r.server.requests() - before, 0);
  t.same(await r.cmd('press', 'read', { point: 'sp' }), { point: 'sp', value: 0 }, 'the bus still works');
});
