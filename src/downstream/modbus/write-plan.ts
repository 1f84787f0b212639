/**
 * A write command in wire form, and what that wire form means. Pure functions, no I/O.
 *
 * The write policy judges what reaches the device, never what the command said:
 * the command is encoded with the point's codec into the registers (or coils)
 * that will be sent, and those are decoded again — with the codec of every
 * configured point they touch — into the engineering values the device will hold
 * (`writtenValues`). A raw write is judged the same way as a write by point name.
 */
import type { DeviceConfig, PointConfig } from '../../core/config.js';
import { GuardianError, hasCode } from '../../core/errors.js';
import type { WriteRequest, WrittenValue } from '../../core/types.js';
import { applyScale, decodeBits, decodeRegisters, encodeRegisters, registerCount, withBit } from './codec.js';

export const MAX_REGISTERS = 123; // FC16
export const MAX_COILS = 1968; // FC15

export type WriteData = readonly number[] | readonly boolean[];

/** A write in wire form. A `bit` point's register is only known once read: see `withRegister`. */
export interface WritePlan {
  readonly device: DeviceConfig;
  readonly table: 'coil' | 'holding';
  readonly address: number;
  /** Registers (holding) or coils to send; for a `bit` point, empty until `withRegister`. */
  readonly data: WriteData;
  readonly point?: PointConfig;
  /** A `bit` point: the value of its bit (a read-modify-write of the register). */
  readonly bit?: boolean;
}

export function invalid(device: string, message: string, context: Record<string, string | number> = {}): GuardianError {
  return new GuardianError('GUARDIAN_E_COMMAND_INVALID', message, { device, ...context });
}

export function pointOf(device: DeviceConfig, name: string): PointConfig {
  const point = device.points.find((p) => p.name === name);
  if (point === undefined) throw new GuardianError('GUARDIAN_E_COMMAND_UNKNOWN', `device ${device.name} has no point '${name}'`, { device: device.name, point: name });
  return point;
}

const DECIMAL = /^-?\d+$/;
const is64 = (point: PointConfig): boolean => point.type === 'int64' || point.type === 'uint64';

/**
 * The raw value to encode for an engineering value: `(value - offset) / scale`;
 * integer types must land on an integer (within float noise). 64-bit integers may
 * be decimal strings: exact without scale and offset, through Number with them.
 */
function unscale(point: PointConfig, device: string, value: number | string): number | string {
  const fail = (why: string): GuardianError => invalid(device, `point ${point.name}: ${why}`, { point: point.name });
  if (typeof value === 'string') {
    if (!is64(point) || !DECIMAL.test(value)) throw fail(`a ${point.type} value must be a JSON number (decimal strings only for int64/uint64)`);
    if (point.scale === 1 && point.offset === 0) return value;
    value = Number(value);
  }
  if (!Number.isFinite(value)) throw fail(`${value} is not a finite number`);
  if (point.scale === 1 && point.offset === 0) return value;
  const raw = (value - point.offset) / point.scale;
  if (point.type === 'float32' || point.type === 'float64') return raw;
  const rounded = Math.round(raw);
  if (!Number.isFinite(raw) || Math.abs(raw - rounded) > 1e-6 * Math.max(1, Math.abs(rounded))) {
    throw fail(`${value} is not a multiple of its scale ${point.scale} (offset ${point.offset})`);
  }
  return rounded;
}

function encodePoint(device: DeviceConfig, point: PointConfig, value: unknown): number[] {
  const wrongType = (want: string): GuardianError => invalid(device.name, `point ${point.name} is ${point.type}: value must be ${want}`, { point: point.name });
  let input: number | string | boolean;
  if (point.type === 'bool') {
    if (typeof value !== 'boolean') throw wrongType('true or false');
    input = value;
  } else if (point.type === 'string') {
    if (typeof value !== 'string') throw wrongType('a string');
    input = value;
  } else {
    if (typeof value !== 'number' && typeof value !== 'string') throw wrongType('a number');
    input = unscale(point, device.name, value);
  }
  try {
    return encodeRegisters(point, input);
  } catch (err) {
    if (hasCode(err, 'GUARDIAN_E_DECODE')) throw invalid(device.name, err.message, { point: point.name });
    throw err;
  }
}

/** The command's payload (already schema-checked) in wire form; throws GUARDIAN_E_COMMAND_INVALID / _UNKNOWN. */
export function planWrite(device: DeviceConfig, p: Readonly<Record<string, unknown>>): WritePlan {
  if (p['point'] === undefined && p['table'] === undefined) throw invalid(device.name, 'write: give either {point, value} or {table, address, values}');
  if (p['point'] !== undefined && p['table'] !== undefined) throw invalid(device.name, 'write: give either {point, value} or {table, address, values}, not both');
  if (p['point'] === undefined) {
    const table = p['table'] as 'coil' | 'holding';
    const address = p['address'] as number;
    const values = p['values'] as readonly unknown[];
    const max = table === 'coil' ? MAX_COILS : MAX_REGISTERS;
    if (values.length > max) throw invalid(device.name, `write: at most ${max} ${table === 'coil' ? 'coils' : 'registers'} in one request (got ${values.length})`);
    if (address + values.length > 0x10000) throw invalid(device.name, `write: ${table} ${address} + ${values.length} runs past address 65535`);
    if (table === 'coil') {
      if (!values.every((v): v is boolean => typeof v === 'boolean')) throw invalid(device.name, 'write: coil values must be true or false');
      return { device, table, address, data: values };
    }
    if (!values.every((v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff)) throw invalid(device.name, 'write: holding register values must be integers 0-65535');
    return { device, table, address, data: values };
  }
  const point = pointOf(device, p['point'] as string);
  const value = p['value'];
  if (point.table !== 'coil' && point.table !== 'holding') {
    throw invalid(device.name, `point ${point.name} is in the ${point.table} table, which is read-only`, { point: point.name });
  }
  const at = { device, table: point.table, address: point.address, point };
  if (point.table === 'coil' || point.type === 'bit') {
    if (typeof value !== 'boolean') throw invalid(device.name, `point ${point.name} is ${point.table === 'coil' ? 'a coil' : 'one bit of a register'}: value must be true or false`, { point: point.name });
    return point.table === 'coil' ? { ...at, data: [value] } : { ...at, data: [], bit: value };
  }
  return { ...at, data: encodePoint(device, point, value) };
}

/** A `bit` point's plan once its register was read: that register with only the bit changed. */
export function withRegister(plan: WritePlan, register: number): WritePlan {
  if (plan.point === undefined || plan.bit === undefined) return plan;
  return { ...plan, data: [withBit(plan.point, register, plan.bit)] };
}

/** Decode one configured point from its registers or coil as they will be on the device. */
function decodeWritten(point: PointConfig, slice: WriteData): Pick<WrittenValue, 'value' | 'unknown'> {
  try {
    const raw = point.table === 'coil' ? decodeBits(point, slice as readonly boolean[]) : decodeRegisters(point, slice as readonly number[]);
    if (point.type === 'string') return { unknown: `is text (${JSON.stringify(raw)})` };
    const value = applyScale(point, raw);
    return value === null ? { unknown: 'has no value' } : { value };
  } catch (err) {
    if (hasCode(err, 'GUARDIAN_E_DECODE')) return { unknown: `does not decode (${err.message})` };
    throw err;
  }
}

/**
 * What `data` written at `address` of `table` leaves in the device: each configured
 * point of that table the range touches, decoded with its own codec (a point only
 * partly inside the range has no known value: its other registers are not written),
 * and each written address no point covers, as its raw register or coil.
 */
export function writtenValues(device: DeviceConfig, table: 'coil' | 'holding', address: number, data: WriteData): WrittenValue[] {
  const last = address + data.length - 1;
  const described = new Array<boolean>(data.length).fill(false);
  const out: WrittenValue[] = [];
  for (const point of device.points) {
    if (point.table !== table) continue;
    const count = registerCount(point);
    const end = point.address + count - 1;
    if (end < address || point.address > last) continue;
    for (let a = Math.max(point.address, address); a <= Math.min(end, last); a++) described[a - address] = true;
    const span = { point: point.name, address: point.address, count };
    if (point.address < address || end > last) {
      out.push({ ...span, unknown: `is only partly written (${table} ${address}-${last} of ${point.address}-${end})` });
      continue;
    }
    out.push({ ...span, ...decodeWritten(point, data.slice(point.address - address, end - address + 1)) });
  }
  described.forEach((seen, i) => {
    const value = data[i];
    if (!seen && value !== undefined) out.push({ address: address + i, count: 1, value });
  });
  return out;
}

/** The question for the write policy: the data as it will be sent and what it means. */
export function writeRequest(plan: WritePlan, requester: string): WriteRequest {
  return {
    device: plan.device.name, table: plan.table, address: plan.address, count: plan.data.length,
    kind: plan.point === undefined ? 'raw' : 'point', ...(plan.point === undefined ? {} : { point: plan.point.name }),
    data: plan.data, written: writtenValues(plan.device, plan.table, plan.address, plan.data), requester,
  };
}
