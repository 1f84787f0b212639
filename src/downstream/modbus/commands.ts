/**
 * Device commands on a Modbus bus: `write` (a point by name, or raw coils /
 * holding registers) and `read` (a point, now). Every write is put in its wire
 * form first (table, addresses, registers) and asked of the WriteGate before
 * anything is sent; an allowed write goes out as one request (FC5/FC6 for one
 * coil or register, FC15/FC16 for more: a 32-bit value is one FC16), is never
 * retried, and is then read back and compared unless its rule says Verify false.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import type { Logger } from 'pino';
import type { DeviceConfig, PointConfig } from '../../core/config.js';
import { GuardianError, hasCode } from '../../core/errors.js';
import { formatSchemaError } from '../../core/schema-errors.js';
import type { DeviceCommand, PointValue, WriteGate, WriteRequest } from '../../core/types.js';
import type { BusArbiter } from './arbiter.js';
import { classify } from './classify.js';
import { applyScale, decodeBits, decodeRegisters, encodeRegisters, isBitTable, registerCount } from './codec.js';
import { readTable, type ModbusClient } from './transport.js';

const SCHEMA_URL = new URL('../../../config/modbus-command.schema.json', import.meta.url);
const MAX_REGISTERS = 123; // FC16
const MAX_COILS = 1968; // FC15

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

function invalid(device: string, message: string, context: Record<string, string | number> = {}): GuardianError {
  return new GuardianError('GUARDIAN_E_COMMAND_INVALID', message, { device, ...context });
}

/** A write in wire form, with what the policy needs to judge it. */
interface PlannedWrite {
  readonly request: WriteRequest;
  /** Registers (holding) or bits (coil), `request.count` of them. */
  readonly data: readonly number[] | readonly boolean[];
  readonly point?: PointConfig;
}

/** The raw integer for an engineering value: (value - offset) / scale, which must land on an integer (within float noise). */
function unscale(point: PointConfig, device: string, value: number): number {
  if (point.scale === 1 && point.offset === 0) return value;
  const raw = (value - point.offset) / point.scale;
  if (point.type === 'float32' || point.type === 'float64') return raw;
  const rounded = Math.round(raw);
  if (!Number.isFinite(raw) || Math.abs(raw - rounded) > 1e-6 * Math.max(1, Math.abs(rounded))) {
    throw invalid(device, `point ${point.name}: ${value} is not a multiple of its scale ${point.scale} (offset ${point.offset})`, { point: point.name });
  }
  return rounded;
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

  private pointOf(device: DeviceConfig, name: string): PointConfig {
    const point = device.points.find((p) => p.name === name);
    if (point === undefined) throw new GuardianError('GUARDIAN_E_COMMAND_UNKNOWN', `device ${device.name} has no point '${name}'`, { device: device.name, point: name });
    return point;
  }

  private async read(device: DeviceConfig, name: string): Promise<{ point: string; value: PointValue }> {
    const point = this.pointOf(device, name);
    const data = await this.exec(device, point.table, point.address, registerCount(point), 'read');
    return { point: point.name, value: this.decode(point, data) };
  }

  private async write(device: DeviceConfig, command: DeviceCommand): Promise<unknown> {
    const planned = this.plan(device, command);
    const { request } = planned;
    const decision = this.gate.decide(request);
    if (!decision.allowed) {
      throw new GuardianError('GUARDIAN_E_WRITE_DENIED', decision.message, { device: device.name, reason: decision.reason, table: request.table, address: request.address, count: request.count });
    }
    await this.exec(device, request.table, request.address, request.count, 'write', planned.data);
    const written = { table: request.table, address: request.address, values: [...planned.data] };
    if (!decision.verify) {
      return { ...written, verified: false, ...(planned.point === undefined ? {} : { point: planned.point.name, value: command.payload['value'] }) };
    }
    const back = await this.exec(device, request.table, request.address, request.count, 'read');
    const same = back.length === planned.data.length && back.every((v, i) => v === planned.data[i]);
    if (!same) {
      throw new GuardianError('GUARDIAN_E_WRITE_VERIFY', `device ${device.name} accepted the write to ${request.table} ${request.address} but reads back ${JSON.stringify(back)} instead of ${JSON.stringify(planned.data)}`, {
        device: device.name, table: request.table, address: request.address, written: JSON.stringify(planned.data), readBack: JSON.stringify(back),
      });
    }
    return { ...written, verified: true, ...(planned.point === undefined ? {} : { point: planned.point.name, value: this.decode(planned.point, back) }) };
  }

  /** The command in wire form; throws GUARDIAN_E_COMMAND_INVALID / _UNKNOWN for what cannot be written. */
  private plan(device: DeviceConfig, command: DeviceCommand): PlannedWrite {
    const p = command.payload;
    const base = { device: device.name, requester: command.requester };
    if (p['point'] === undefined && p['table'] === undefined) throw invalid(device.name, 'write: give either {point, value} or {table, address, values}');
    if (p['point'] !== undefined && p['table'] !== undefined) throw invalid(device.name, 'write: give either {point, value} or {table, address, values}, not both');
    if (p['point'] === undefined) {
      const table = p['table'] as 'coil' | 'holding';
      const address = p['address'] as number;
      const values = p['values'] as readonly (number | boolean)[];
      const max = table === 'coil' ? MAX_COILS : MAX_REGISTERS;
      if (values.length > max) throw invalid(device.name, `write: at most ${max} ${table === 'coil' ? 'coils' : 'registers'} in one request (got ${values.length})`);
      if (address + values.length > 0x10000) throw invalid(device.name, `write: ${table} ${address} + ${values.length} runs past address 65535`);
      if (table === 'coil') {
        if (!values.every((v) => typeof v === 'boolean')) throw invalid(device.name, 'write: coil values must be true or false');
        return { request: { ...base, kind: 'raw', table, address, count: values.length, values: [] }, data: values };
      }
      if (!values.every((v) => typeof v === 'number' && v >= 0 && v <= 0xffff)) throw invalid(device.name, 'write: holding register values must be integers 0-65535');
      return { request: { ...base, kind: 'raw', table, address, count: values.length, values: values as number[] }, data: values as number[] };
    }
    const point = this.pointOf(device, p['point'] as string);
    const value = p['value'] as number | boolean | string;
    if (point.table !== 'coil' && point.table !== 'holding') {
      throw invalid(device.name, `point ${point.name} is in the ${point.table} table, which is read-only`, { point: point.name });
    }
    if (point.type === 'bit') {
      throw invalid(device.name, `point ${point.name} is one bit of a register: writing it would overwrite the other bits; write the whole register with {table, address, values}`, { point: point.name });
    }
    const common = { ...base, kind: 'point' as const, point: point.name, table: point.table, address: point.address };
    if (point.table === 'coil') {
      if (typeof value !== 'boolean') throw invalid(device.name, `point ${point.name} is a coil: value must be true or false`, { point: point.name });
      return { request: { ...common, count: 1, values: [] }, data: [value], point };
    }
    let registers: number[];
    try {
      registers = encodeRegisters(point, typeof value === 'number' ? unscale(point, device.name, value) : value);
    } catch (err) {
      if (hasCode(err, 'GUARDIAN_E_DECODE')) throw invalid(device.name, err.message, { point: point.name });
      throw err;
    }
    const limited = typeof value === 'number' ? [value] : typeof value === 'boolean' ? [value ? 1 : 0] : /^-?\d+$/.test(value) ? [Number(value)] : [];
    return { request: { ...common, count: registers.length, values: limited }, data: registers, point };
  }

  private decode(point: PointConfig, data: readonly number[] | readonly boolean[]): PointValue {
    return applyScale(point, isBitTable(point.table) ? decodeBits(point, data as boolean[]) : decodeRegisters(point, data as number[]));
  }

  /** One request through the bus arbiter, never retried; device failures throw their Modbus error codes. */
  private async exec(device: DeviceConfig, table: PointConfig['table'], address: number, count: number, op: 'read' | 'write', data?: readonly number[] | readonly boolean[]): Promise<number[] | boolean[]> {
    const context = { device: device.name, bus: this.busName, unitId: device.unitId, table, address, count, timeoutMs: device.timeoutMs };
    try {
      return await this.arbiter.exec(async (client: ModbusClient) => {
        client.setID(device.unitId);
        client.setTimeout(device.timeoutMs);
        try {
          if (op === 'write') {
            await writeRequest(client, table as 'coil' | 'holding', address, data ?? []);
            return [];
          }
          return (await readTable(client, table, address, count)).slice(0, count);
        } catch (err) {
          // RTU has no transaction ids: a late answer would pass for the next request's.
          // Hold the bus one more timeout so it arrives (and is discarded) before that one is sent.
          const kind = classify(err, context).kind;
          if (this.arbiter.rtuFraming && (kind === 'timeout' || kind === 'frame')) await new Promise((resolve) => setTimeout(resolve, device.timeoutMs));
          throw err;
        }
      });
    } catch (err) {
      if (err instanceof GuardianError) throw err; // the bus is down (arbiter)
      const failure = classify(err, context);
      if (failure.kind === 'transport') this.arbiter.invalidate(failure.error);
      this.log.debug({ err: failure.error, op }, 'command request failed');
      throw failure.error;
    }
  }
}

function writeRequest(client: ModbusClient, table: 'coil' | 'holding', address: number, data: readonly number[] | readonly boolean[]): Promise<unknown> {
  if (table === 'coil') {
    const bits = data as boolean[];
    return bits.length === 1 ? client.writeCoil(address, bits[0] as boolean) : client.writeCoils(address, [...bits]);
  }
  const regs = data as number[];
  return regs.length === 1 ? client.writeRegister(address, regs[0] as number) : client.writeRegisters(address, [...regs]);
}
