// What reaches the device is what the policy judged (issue 11, items 2 and 4a), against a real
// Modbus TCP device (pymodbus) and its log of the writes it executed:
// - a string value is not written raw past the scale and offset; raw registers are judged by
//   the value the point's codec reads from them;
// - a bit point is a read-modify-write: the other bits of its register do not change;
// - concurrent writes with read-back: each write and its read-back are one unit on the bus,
//   so every write is answered with its own value and the device executed them in order.
import t, { type Test } from 'tap';
import type { PointConfig } from '../../../src/config/types.js';
import type { GuardianError } from '../../../src/core/errors.js';
import { encodeRegisters } from '../../../src/downstream/modbus/codec.js';
import { parseManifest } from '../../../src/firewall/manifest.js';
import { WritePolicy } from '../../../src/firewall/write-policy.js';
import { LoggedWriteGate } from '../../../src/daemon/command-router.js';
import { captureLogger } from '../../fixtures/logs.js';
import { startModbusServer, type ModbusServer } from '../../fixtures/pymodbus.js';
import { busConfig, pointsOf, runAdapter, type RunningAdapter } from './harness.js';

const manifest = (allow: Record<string, unknown>[], rate?: number): string => JSON.stringify({
  SchemaVersion: 1, Name: 'wire', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: {},
  Guardian: { WritePolicy: { Devices: { dev: { Allow: allow, ...(rate === undefined ? {} : { MaxWritesPerMinute: rate }) } } } },
});

interface Rig {
  readonly server: ModbusServer;
  readonly run: RunningAdapter;
  readonly logs: ReturnType<typeof captureLogger>;
  readonly points: ReadonlyMap<string, PointConfig>;
  cmd(payload: Record<string, unknown>): Promise<unknown>;
  fail(payload: Record<string, unknown>): Promise<GuardianError>;
}

async function rig(t: Test, points: Record<string, unknown>[], allow: Record<string, unknown>[], pollIntervalMs = 600_000): Promise<Rig> {
  const server = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: Array<number>(20).fill(0) } } } });
  const bus = busConfig({ name: 'line', type: 'tcp', host: '127.0.0.1', port: server.port, devices: [{ name: 'dev', unitId: 1, pollIntervalMs, timeoutMs: 2000, retries: 0, points }] });
  const logs = captureLogger();
  const gate = new LoggedWriteGate(WritePolicy.fromManifest(parseManifest(manifest(allow))), logs.log);
  const run = await runAdapter(t, bus, logs, gate);
  await run.waitFor((r) => r.device === 'dev', { what: 'first poll' });
  const cmd = (payload: Record<string, unknown>): Promise<unknown> => run.adapter.command({ device: 'dev', name: 'write', payload, requester: 'test:attacker' });
  return {
    server, run, logs, points: pointsOf(bus, 'dev'), cmd,
    fail: (payload) => cmd(payload).then((data) => { throw new Error(`expected a refusal, got ${JSON.stringify(data)}`); }, (err: unknown) => err as GuardianError),
  };
}

void t.test('Min/Max cannot be bypassed with a string value or raw registers (scale and offset)', async (t) => {
  const r = await rig(t, [
    { name: 'level', table: 'holding', address: 0, type: 'int16', scale: 10 },
    { name: 'temp', table: 'holding', address: 1, type: 'int16', offset: -40 },
    { name: 'big', table: 'holding', address: 4, type: 'uint64' },
  ], [
    { Table: 'holding', Addresses: 0, Min: 0, Max: 100 },
    { Table: 'holding', Addresses: 1, Min: 0, Max: 50 },
    { Table: 'holding', Addresses: [4, 7], Min: 0, Max: 1000 },
  ]);
  const attacks: [Record<string, unknown>, string, RegExp][] = [
    [{ point: 'level', value: '50' }, 'GUARDIAN_E_COMMAND_INVALID', /point level: a int16 value must be a JSON number/],
    [{ point: 'temp', value: '0' }, 'GUARDIAN_E_COMMAND_INVALID', /point temp: a int16 value must be a JSON number/],
    [{ table: 'holding', address: 0, values: [50] }, 'GUARDIAN_E_WRITE_DENIED', /value 500 is above the maximum 100/],
    [{ table: 'holding', address: 1, values: [0] }, 'GUARDIAN_E_WRITE_DENIED', /value -40 is below the minimum 0/],
    [{ table: 'holding', address: 1, values: [65535] }, 'GUARDIAN_E_WRITE_DENIED', /value -41 is below the minimum 0/],
    [{ point: 'level', value: 110 }, 'GUARDIAN_E_WRITE_DENIED', /value 110 is above the maximum 100/],
    [{ point: 'big', value: '18446744073709551615' }, 'GUARDIAN_E_WRITE_DENIED', /value 18446744073709551615 is above the maximum 1000/],
    [{ table: 'holding', address: 7, values: [1] }, 'GUARDIAN_E_WRITE_DENIED', /point big \(holding 4-7\) has value limits \(holding 4-7\) and is only partly written/],
    [{ table: 'holding', address: 4, values: [0, 0, 1, 0] }, 'GUARDIAN_E_WRITE_DENIED', /value 65536 is above the maximum 1000/],
  ];
  for (const [payload, code, message] of attacks) t.match(await r.fail(payload), { code, message }, JSON.stringify(payload));
  t.same(await r.server.writes(), [], 'none of them reached the device');
  const denied = r.logs.lines.filter((l) => l['decision'] === 'denied');
  t.equal(denied.length, attacks.filter(([, code]) => code === 'GUARDIAN_E_WRITE_DENIED').length, 'every refused write is logged…');
  t.ok(denied.every((l) => l['code'] === 'GUARDIAN_E_WRITE_DENIED' && l['requester'] === 'test:attacker'), '…with its code and who asked');

  t.match(await r.cmd({ point: 'level', value: 50 }), { values: [5], value: 50, verified: true }, '50 is unscaled to 5');
  t.match(await r.cmd({ table: 'holding', address: 1, values: [90] }), { values: [90], verified: true }, 'raw 90 is 50 °C: within the limits');
  t.match(await r.cmd({ point: 'big', value: '1000' }), { values: [0, 0, 0, 1000], value: 1000 }, 'a 64-bit decimal string');
  t.same(await r.server.writes(), [
    { unit: 1, fc: 6, address: 0, values: [5] },
    { unit: 1, fc: 6, address: 1, values: [90] },
    { unit: 1, fc: 16, address: 4, values: [0, 0, 0, 1000] },
  ], 'the device executed exactly the three allowed writes');
});

void t.test('a bit point is written by read-modify-write: the other bits of the register stay', async (t) => {
  const r = await rig(t, [
    { name: 'alarm', table: 'holding', address: 10, type: 'bit', bit: 3, byteOrder: 'little' },
    { name: 'mode', table: 'holding', address: 11, type: 'bit', bit: 0 },
    { name: 'word', table: 'holding', address: 11, type: 'uint16' },
  ], [{ Table: 'holding', Addresses: 10 }, { Table: 'holding', Addresses: 11, Min: 0, Max: 0x00ff }]);
  await r.server.set(1, 'holding', 10, [0xa55a, 0x0010]);
  t.match(await r.cmd({ point: 'alarm', value: true }), { values: [0xa55a | (1 << 11)], value: true, verified: true }, 'bit 3 of the little-endian register is bit 11 on the wire');
  t.same(await r.server.get(1, 'holding', 10, 1), [0xa55a | (1 << 11)], 'only that bit changed');
  t.match(await r.cmd({ point: 'alarm', value: false }), { values: [0xa55a], value: false });
  t.match(await r.cmd({ point: 'mode', value: true }), { values: [0x0011], value: true }, 'the other point of register 11 (word = 17) is within its limits');
  await r.server.set(1, 'holding', 11, [0x0100]);
  t.match(await r.fail({ point: 'mode', value: true }), { code: 'GUARDIAN_E_WRITE_DENIED', message: /value 257 is above the maximum 255/ }, 'a bit write is judged with the whole register it leaves');
  t.same(await r.server.writes(), [
    { unit: 1, fc: 6, address: 10, values: [0xa55a | (1 << 11)] },
    { unit: 1, fc: 6, address: 10, values: [0xa55a] },
    { unit: 1, fc: 6, address: 11, values: [0x0011] },
  ]);
  t.same(await r.server.get(1, 'holding', 11, 1), [0x0100], 'the refused write left the register alone');
});

void t.test('a burst of concurrent writes with read-back: each answered with its own value, executed in command order', async (t) => {
  // polls every 20 ms share the bus with the burst
  const r = await rig(t, [{ name: 'sp', table: 'holding', address: 0, type: 'float32' }], [{ Table: 'holding', Addresses: [0, 1] }], 20);
  const sp = r.points.get('sp') as PointConfig;
  const values = Array.from({ length: 12 }, (_, i) => 20.5 + i);
  const replies = await Promise.allSettled(values.map((value) => r.cmd({ point: 'sp', value })));
  replies.forEach((reply, i) => {
    t.match(reply, { status: 'fulfilled', value: { point: 'sp', value: values[i], verified: true, values: encodeRegisters(sp, values[i] as number) } }, `t${i}: answered with its own value`);
  });
  t.same((await r.server.writes()).map((w) => w.values), values.map((v) => encodeRegisters(sp, v)), 'the device executed the writes in command order');
  t.same(await r.server.get(1, 'holding', 0, 2), encodeRegisters(sp, values[11] as number), 'the last one is what the device holds');
});
