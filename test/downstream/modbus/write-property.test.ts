// Property tests of the write path (issue 11, item 4): random point definitions × random
// commands × random policies. Whatever the command, every register image the policy lets
// through decodes — with the point's own codec — to a value the policy allows.
// In-process (plan → policy → image) for thousands of cases, and end to end against a real
// pymodbus device for a few hundred (the device's write log and registers are the evidence).
// A failure prints fast-check's counterexample and the seed; rerun with FC_SEED=<seed>.
import fc from 'fast-check';
import t, { type Test } from 'tap';
import type { DeviceConfig } from '../../../src/config/types.js';
import { GuardianError } from '../../../src/core/errors.js';
import { BusArbiter } from '../../../src/downstream/modbus/arbiter.js';
import { ModbusCommands } from '../../../src/downstream/modbus/command-executor.js';
import { planWrite, withRegister, writeRequest } from '../../../src/downstream/modbus/write-plan.js';
import { parseManifest, type WriteRule } from '../../../src/firewall/manifest.js';
import { WritePolicy } from '../../../src/firewall/write-policy.js';
import { captureLogger } from '../../fixtures/logs.js';
import { startModbusServer } from '../../fixtures/pymodbus.js';
import { busConfig } from './harness.js';
import { allowOf, deviceArb, imageArb, payloadArb, rulesArb, SPACE, violation } from './write-arbitraries.js';

const SEED = Number(process.env['FC_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const REFUSALS = new Set(['GUARDIAN_E_COMMAND_INVALID', 'GUARDIAN_E_COMMAND_UNKNOWN', 'GUARDIAN_E_WRITE_DENIED']);

function policyOf(rules: readonly WriteRule[]): WritePolicy {
  return WritePolicy.fromManifest(parseManifest(JSON.stringify({
    SchemaVersion: 1, Name: 'prop', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: {},
    Guardian: { WritePolicy: { Devices: { dev: { Allow: allowOf(rules) } } } },
  })));
}

const caseArb = deviceArb.chain((device) => fc.tuple(fc.constant(device), rulesArb, payloadArb(device), imageArb));

async function check(t: Test, name: string, run: () => Promise<void> | void): Promise<void> {
  t.comment(`${name}: fast-check seed ${SEED} (rerun with FC_SEED=${SEED})`);
  try {
    await run();
    t.pass(name);
  } catch (err) {
    t.fail(`${name} (seed ${SEED}): ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A refusal must be one of the stable codes, never a TypeError or the like. */
function expectRefusal(err: unknown): string {
  if (err instanceof GuardianError && REFUSALS.has(err.code)) return err.code;
  throw err;
}

void t.test('in process: plan → policy → register image, 4000 cases', async (t) => {
  const seen = { allowed: 0, denied: 0, invalid: 0, bit: 0 };
  await check(t, 'every allowed image decodes within the limits', () => fc.assert(fc.property(caseArb, ([device, rules, payload, image]) => {
    const policy = policyOf(rules);
    let plan;
    try {
      plan = planWrite(device, payload);
    } catch (err) {
      expectRefusal(err);
      seen.invalid += 1;
      return;
    }
    if (plan.bit !== undefined) {
      seen.bit += 1;
      plan = withRegister(plan, image.holding[plan.address] ?? 0);
    }
    const decision = policy.decide(writeRequest(plan, 'prop'));
    if (!decision.allowed) {
      seen.denied += 1;
      return;
    }
    seen.allowed += 1;
    const after: (number | boolean)[] = plan.table === 'coil' ? [...image.coils] : [...image.holding];
    plan.data.forEach((v, i) => { after[plan.address + i] = v; });
    const why = violation(device, rules, plan.table, plan.address, plan.data.length, after, plan.table === 'coil' ? image.coils : image.holding);
    if (why !== undefined) throw new Error(`${why}; wrote ${JSON.stringify(plan.data)} at ${plan.table} ${plan.address}`);
  }), { seed: SEED, numRuns: 4000 }));
  t.comment(`outcomes: ${JSON.stringify(seen)}`);
  t.ok(seen.allowed > 200 && seen.denied > 200 && seen.invalid > 200 && seen.bit > 5, `the cases reach every outcome (${JSON.stringify(seen)})`);
});

void t.test('end to end against pymodbus: 300 commands, the device log and registers', async (t) => {
  const zeros = Array<number>(SPACE).fill(0);
  const server = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: zeros }, coils: { 0: Array<boolean>(SPACE).fill(false) } } } });
  const bus = busConfig({ name: 'line', type: 'tcp', host: '127.0.0.1', port: server.port, devices: [{ name: 'dev', unitId: 1, timeoutMs: 2000, points: [{ name: 'x', table: 'holding', address: 0, type: 'uint16' }] }] });
  const logs = captureLogger();
  const arbiter = new BusArbiter(bus, logs.log);
  t.teardown(() => arbiter.close());
  const seen = { written: 0, refused: 0 };
  await check(t, 'every write the device executed leaves values within the limits', () => fc.assert(fc.asyncProperty(caseArb, async ([device, rules, payload, image]: [DeviceConfig, WriteRule[], Record<string, unknown>, typeof imageArb extends fc.Arbitrary<infer I> ? I : never]) => {
    await server.set(1, 'holding', 0, image.holding);
    await server.set(1, 'coils', 0, image.coils);
    const before = (await server.writes()).length;
    const commands = new ModbusCommands([device], 'line', arbiter, policyOf(rules), logs.log);
    let refused: string | undefined;
    try {
      await commands.run({ device: 'dev', name: 'write', payload, requester: 'prop' });
    } catch (err) {
      refused = expectRefusal(err);
    }
    const writes = (await server.writes()).slice(before);
    if (refused !== undefined) {
      seen.refused += 1;
      if (writes.length !== 0) throw new Error(`refused (${refused}) but the device executed ${JSON.stringify(writes)}`);
      return;
    }
    seen.written += 1;
    const [w] = writes;
    if (w === undefined || writes.length !== 1) throw new Error(`one write request expected, the device executed ${JSON.stringify(writes)}`);
    const table = w.fc === 5 || w.fc === 15 ? 'coil' : 'holding';
    const after = await server.get(1, table === 'coil' ? 'coils' : 'holding', 0, SPACE);
    const why = violation(device, rules, table, w.address, w.values.length, after, table === 'coil' ? image.coils : image.holding);
    if (why !== undefined) throw new Error(`${why}; the device executed ${JSON.stringify(w)}`);
  }), { seed: SEED, numRuns: 300 }));
  t.comment(`outcomes: ${JSON.stringify(seen)}`);
  t.ok(seen.written > 20 && seen.refused > 20, `both outcomes reached the device (${JSON.stringify(seen)})`);
});
