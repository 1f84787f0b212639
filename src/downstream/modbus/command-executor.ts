/**
 * Device commands on a Modbus bus: `write` (a point by name, or raw coils /
 * holding registers) and `read` (a point, now). Every write is put in its wire
 * form first (write-plan.ts: the registers to send and what they decode to) and
 * asked of the WriteGate before it is sent; an allowed write goes out as one
 * request (FC5/FC6 for one coil or register, FC15/FC16 for more: a 32-bit value
 * is one FC16), is never retried, and is read back and compared unless its rule
 * says Verify false. The write and its read-back are one job of the bus arbiter:
 * no other request (a poll, another command) comes between them. A `bit` point
 * is a read-modify-write of its register, all three in that one job; it is
 * judged on its bit before the job is queued (a refused one costs no read), and
 * on the whole register it leaves once read (a refusal then is counted as a read).
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import type { DeviceConfig, PointConfig } from '../../config/types.js';
import { GuardianError } from '../../core/errors.js';
import { formatSchemaError } from '../../core/schema-errors.js';
import type { DeviceCommand, PointValue, WriteDecision, WriteGate } from '../../core/types.js';
import type { BusArbiter } from './arbiter.js';
import { classify } from './classify.js';
import { applyScale, decodeBits, decodeRegisters, isBitTable, registerCount } from './codec.js';
import { readTable, type ModbusClient } from './transport.js';
import { invalid, planWrite, pointOf, withRegister, writeRequest, writtenValues, type WriteData, type WritePlan } from './write-plan.js';

const SCHEMA_URL = new URL('../../../config/modbus-command.schema.json', import.meta.url);

/** What one write job did on the bus: the data sent, and what was read back (when verified). */
interface Done {
  readonly plan: WritePlan;
  readonly verify: boolean;
  readonly back?: number[] | boolean[];
}

type Validators = Record<'write' | 'read', ValidateFunction>;
let validators: Validators | undefined;
function validator(name: 'write' | 'read'): ValidateFunction {
  if (validators === undefined) {
    const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Record<string, unknown>;
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
    ajv.addSchema(schema);
    const ref = (def: string): ValidateFunction => ajv.getSchema(`${String(schema['$id'])}#/definitions/${def}`) as ValidateFunction;
    validators = { write: ref('write'), read: ref('read') };
  }
  return validators[name];
}

export class ModbusCommands {
  private readonly devices: ReadonlyMap<string, DeviceConfig>;

  constructor(
    devices: readonly DeviceConfig[],
    private readonly busName: string,
    private readonly arbiter: BusArbiter,
    private readonly gate: WriteGate,
    private readonly log: Logger,
  ) {
    this.devices = new Map(devices.map((d) => [d.name, d]));
  }

  async run(command: DeviceCommand): Promise<unknown> {
    const device = this.devices.get(command.device);
    if (device === undefined) throw new GuardianError('GUARDIAN_E_COMMAND_UNKNOWN', `no device '${command.device}' on bus ${this.busName}`, { device: command.device });
    if (command.name !== 'write' && command.name !== 'read') {
      throw new GuardianError('GUARDIAN_E_COMMAND_UNKNOWN', `device ${device.name} has no command '${command.name}' (commands: write, read)`, { device: device.name, command: command.name });
    }
    const validate = validator(command.name);
    if (!validate(command.payload)) {
      throw invalid(device.name, `${command.name}: ${(validate.errors ?? []).map(formatSchemaError).join('; ')}`);
    }
    return command.name === 'read' ? this.read(device, command.payload['point'] as string) : this.write(device, command);
  }

  private async read(device: DeviceConfig, name: string): Promise<{ point: string; value: PointValue }> {
    const point = pointOf(device, name);
    const count = registerCount(point);
    const data = await this.onBus(device, point.table, point.address, count, (client) => readRange(client, point.table, point.address, count));
    return { point: point.name, value: this.decode(point, data) };
  }

  private async write(device: DeviceConfig, command: DeviceCommand): Promise<unknown> {
    const planned = planWrite(device, command.payload);
    // every write is judged before its job is queued: a refused write costs the bus nothing; a bit write is
    // judged on its bit here (no read for a refused one), and again on the whole register once read
    const verdict = this.decide(planned, command.requester);
    const done = await this.onBus(device, planned.table, planned.address, planned.data.length, async (client): Promise<Done> => {
      let plan = planned;
      if (plan.bit !== undefined) {
        const [register] = await readRange(client, 'holding', plan.address, 1) as number[];
        plan = withRegister(plan, register ?? 0);
        this.decide(plan, command.requester, { busRead: true });
      }
      await sendWrite(client, plan.table, plan.address, plan.data);
      if (!verdict.verify) return { plan, verify: false };
      return { plan, verify: true, back: await readRange(client, plan.table, plan.address, plan.data.length) };
    });
    return this.answer(device, done);
  }

  /** Ask the gate; a refusal throws GUARDIAN_E_WRITE_DENIED. */
  private decide(plan: WritePlan, requester: string, extra: { busRead?: true } = {}): WriteDecision & { allowed: true } {
    const request = writeRequest(plan, requester);
    const decision = this.gate.decide(request);
    if (!decision.allowed) {
      // busRead: refused after reading the register (the command router counts that read against commands.maxReadsPerMinute)
      throw new GuardianError('GUARDIAN_E_WRITE_DENIED', decision.message, { device: request.device, reason: decision.reason, table: request.table, address: request.address, count: request.count, ...extra });
    }
    return decision;
  }

  /** The reply's data, or GUARDIAN_E_WRITE_VERIFY when the device holds something else than was written. */
  private answer(device: DeviceConfig, { plan, verify, back }: Done): unknown {
    const { table, address, data, point } = plan;
    const written = { table, address, values: [...data] };
    if (!verify || back === undefined) {
      const mine = point === undefined ? undefined : writtenValues(device, table, address, data).find((w) => w.point === point.name);
      return { ...written, verified: false, ...(point === undefined ? {} : { point: point.name, value: mine?.value ?? null }) };
    }
    // a bit point: only its bit is compared (the device owns the register's other bits)
    const same = point?.type === 'bit' ? this.decode(point, back) === plan.bit : back.length === data.length && back.every((v, i) => v === data[i]);
    if (!same) {
      throw new GuardianError('GUARDIAN_E_WRITE_VERIFY', `device ${device.name} accepted the write to ${table} ${address} but reads back ${JSON.stringify(back)} instead of ${JSON.stringify(data)}`, {
        device: device.name, table, address, written: JSON.stringify(data), readBack: JSON.stringify(back),
      });
    }
    return { ...written, verified: true, ...(point === undefined ? {} : { point: point.name, value: this.decode(point, back) }) };
  }

  private decode(point: PointConfig, data: WriteData): PointValue {
    return applyScale(point, isBitTable(point.table) ? decodeBits(point, data as boolean[]) : decodeRegisters(point, data as number[]));
  }

  /**
   * One job of the bus arbiter (nothing else on the bus until it ends), never retried;
   * device failures throw their Modbus error codes, a refusal inside the job its own.
   */
  private async onBus<T>(device: DeviceConfig, table: PointConfig['table'], address: number, count: number, job: (client: ModbusClient) => Promise<T>): Promise<T> {
    const context = { device: device.name, bus: this.busName, unitId: device.unitId, table, address, count, timeoutMs: device.timeoutMs };
    try {
      return await this.arbiter.exec(async (client: ModbusClient) => {
        client.setID(device.unitId);
        client.setTimeout(device.timeoutMs);
        try {
          return await job(client);
        } catch (err) {
          if (err instanceof GuardianError) throw err;
          // RTU has no transaction ids: a late answer would pass for the next request's.
          // Hold the bus one more timeout so it arrives (and is discarded) before that one is sent.
          const kind = classify(err, context).kind;
          if (this.arbiter.rtuFraming && (kind === 'timeout' || kind === 'frame')) await new Promise((resolve) => setTimeout(resolve, device.timeoutMs));
          throw err;
        }
      });
    } catch (err) {
      if (err instanceof GuardianError) throw err; // the bus is down (arbiter), or the write was refused
      const failure = classify(err, context);
      if (failure.kind === 'transport') this.arbiter.invalidate(failure.error);
      this.log.debug({ err: failure.error }, 'command request failed');
      throw failure.error;
    }
  }
}

async function readRange(client: ModbusClient, table: PointConfig['table'], address: number, count: number): Promise<number[] | boolean[]> {
  return (await readTable(client, table, address, count)).slice(0, count);
}

function sendWrite(client: ModbusClient, table: 'coil' | 'holding', address: number, data: WriteData): Promise<unknown> {
  if (table === 'coil') {
    const bits = data as boolean[];
    return bits.length === 1 ? client.writeCoil(address, bits[0] as boolean) : client.writeCoils(address, [...bits]);
  }
  const regs = data as number[];
  return regs.length === 1 ? client.writeRegister(address, regs[0] as number) : client.writeRegisters(address, [...regs]);
}
