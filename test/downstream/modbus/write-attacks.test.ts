// The write-path attacks of the security review (issue 11), performed against a real Modbus
// TCP device (pymodbus) through ModbusCommands and the manifest's write policy. Each must be
// refused with GUARDIAN_E_WRITE_DENIED, logged as a denied decision, and absent from the
// device's log of executed writes; the legitimate writes next to each limit still go through.
// - a bool register limited to 0..1 written raw with 65535 (any non-zero reads true);
// - a register of which one bit point describes bit 0, written raw with the other 15 bits set;
// - scaled 64-bit and float values just past a limit (rounding used to hide the excess);
// - a float32 limit that float32 cannot hold (the device would hold 250.100006…);
// - bit writes to a device without a write policy: refused before any bus read.
import t, { type Test } from 'tap';
import { GuardianError } from '../../../src/core/errors.js';
import { parseManifest } from '../../../src/firewall/manifest.js';
import { WritePolicy } from '../../../src/firewall/write-policy.js';
import { LoggedWriteGate } from '../../../src/daemon/command-router.js';
import { captureLogger, codeOf } from '../../fixtures/logs.js';
import { startModbusServer } from '../../fixtures/pymodbus.js';
import { busConfig, runAdapter } from './harness.js';

const manifest = (allow: Record<string, unknown>[] | undefined): string => JSON.stringify({
  SchemaVersion: 1, Name: 'attacks', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: {},
  ...(allow === undefined ? {} : { Guardian: { WritePolicy: { Devices: { dev: { Allow: allow } } } } }),
});

async function rig(t: Test, points: Record<string, unknown>[], allow: Record<string, unknown>[] | undefined) {
  const server = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: Array<number>(20).fill(0) } } } });
  const bus = busConfig({ name: 'line', type: 'tcp', host: '127.0.0.1', port: server.port, devices: [{ name: 'dev', unitId: 1, pollIntervalMs: 600_000, timeoutMs: 2000, retries: 0, points }] });
  const logs = captureLogger();
  const run = await runAdapter(t, bus, logs, new LoggedWriteGate(WritePolicy.fromManifest(parseManifest(manifest(allow))), logs.log));
  await run.waitFor((r) => r.device === 'dev', { what: 'first poll' });
  const outcome = (payload: Record<string, unknown>): Promise<unknown> => run.adapter.command({ device: 'dev', name: 'write', payload, requester: 'test:attacker' })
    .then((data) => data, (err: unknown) => err);
  return { server, logs, outcome };
}

const regs64 = (write: (b: Buffer) => void): number[] => {
  const b = Buffer.alloc(8);
  write(b);
  return [0, 2, 4, 6].map((k) => b.readUInt16BE(k));
};

void t.test('values past a limit are refused, whatever form the write takes', async (t) => {
  const r = await rig(t, [
    { name: 'mode', table: 'holding', address: 0, type: 'bool' },
    { name: 'run', table: 'holding', address: 1, type: 'bit', bit: 0 },
    { name: 'sp', table: 'holding', address: 4, type: 'float64', scale: 0.1 },
    { name: 'cnt', table: 'holding', address: 8, type: 'int64', scale: 2 },
    { name: 'f', table: 'holding', address: 12, type: 'float32' },
  ], [
    { Table: 'holding', Addresses: 0, Min: 0, Max: 1 },
    { Table: 'holding', Addresses: 1, Max: 0 },
    { Table: 'holding', Addresses: [4, 7], Min: 0, Max: 250 },
    { Table: 'holding', Addresses: [8, 11], Max: 2 ** 60 },
    { Table: 'holding', Addresses: [12, 13], Max: 250.1 },
  ]);
  const attacks: [Record<string, unknown>, RegExp][] = [
    [{ table: 'holding', address: 0, values: [65535] }, /holds \[65535\], which is not how its codec writes any bool value/],
    [{ table: 'holding', address: 0, values: [2] }, /holds \[2\], which is not how its codec writes/],
    [{ table: 'holding', address: 1, values: [0xfffe] }, /bits 0xfffe of the register \(as sent\) are in no point/],
    [{ point: 'sp', value: 250.0000000004 }, /value 250\.0000000003999\d* is above the maximum 250$/],
    [{ table: 'holding', address: 4, values: regs64((b) => b.writeDoubleBE(2500.000000004)) }, /is above the maximum 250$/],
    [{ table: 'holding', address: 8, values: regs64((b) => b.writeBigInt64BE(2n ** 59n + 1n)) }, /value 1152921504606846978 is above the maximum 1152921504606846976/],
    [{ point: 'f', value: 250.1 }, /value 250\.100006103515625 is above the maximum 250\.1/],
    [{ point: 'f', value: 250.10001 }, /is above the maximum 250\.1/],
  ];
  for (const [payload, message] of attacks) {
    const got = await r.outcome(payload);
    t.ok(got instanceof GuardianError && got.code === 'GUARDIAN_E_WRITE_DENIED', `${JSON.stringify(payload)}: refused with GUARDIAN_E_WRITE_DENIED`);
    t.match((got as Error).message, message, `${JSON.stringify(payload)}: says why`);
  }
  t.same(await r.server.writes(), [], 'the device executed none of them');
  const denied = r.logs.lines.filter((l) => l['decision'] === 'denied' && codeOf(l) === 'GUARDIAN_E_WRITE_DENIED');
  t.equal(denied.length, attacks.length, 'each is logged as a denied write with the code');

  // the values at the limits are written
  const allowed: Record<string, unknown>[] = [
    { table: 'holding', address: 0, values: [1] }, { point: 'mode', value: true }, { point: 'run', value: false },
    { point: 'sp', value: 250 }, { table: 'holding', address: 8, values: regs64((b) => b.writeBigInt64BE(2n ** 59n)) },
    { point: 'f', value: 250.09999 },
  ];
  for (const payload of allowed) t.notOk((await r.outcome(payload)) instanceof Error, `${JSON.stringify(payload)}: written`);
  t.equal((await r.server.writes()).length, allowed.length, 'the device executed exactly the allowed writes');
});

void t.test('a refused bit write costs the bus nothing: judged before its register is read', async (t) => {
  const r = await rig(t, [{ name: 'flag', table: 'holding', address: 0, type: 'bit', bit: 3 }], undefined);
  const before = await r.server.requests();
  for (let i = 0; i < 50; i++) {
    const got = await r.outcome({ point: 'flag', value: true });
    if (!(got instanceof GuardianError) || got.code !== 'GUARDIAN_E_WRITE_DENIED' || got.context['reason'] !== 'no-policy') {
      t.fail(`write ${i}: expected a no-policy refusal, got ${String(got)}`);
      return;
    }
  }
  t.equal(await r.server.requests() - before, 0, '50 refused bit writes: no request reached the device, not even a read');
  t.same(await r.server.writes(), []);
  t.equal(r.logs.lines.filter((l) => l['decision'] === 'denied' && l['reason'] === 'no-policy').length, 50, 'each refusal is logged');
});
