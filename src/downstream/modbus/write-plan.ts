/**
 * A write command in wire form, and what that wire form means. Pure functions, no I/O.
 *
 * The write policy judges what reaches the device, never what the command said:
 * the command is encoded with the point's codec into the registers (or coils)
 * that will be sent, and those are decoded again — with the codec of every
 * configured point they touch — into the engineering values the device will hold
 * (`writtenValues`). A raw write is judged the same way as a write by point name.
 */
import type { DeviceConfig, PointConfig } from '../../config/types.js';
import { GuardianError, hasCode } from '../../core/errors.js';
import type { WriteRequest, WrittenValue } from '../../core/types.js';
import { applyScale, bitMask, decodeBits, decodeRegisters, encodeRegisters, exactValue, isCanonical, registerCount, withBit } from './codec.js';

export const MAX_REGISTERS = 123; // FC16
export const MAX_COILS = 1968; // FC15

export type WriteData = readonly number[] | readonly boolean[];

/** A write in wire form. A `bit` point's other bits are only known once its register is read: see `withRegister`. */
export interface WritePlan {
  readonly device: DeviceConfig;
  readonly table: 'coil' | 'holding';
  readonly address: number;
  /** Registers (holding) or coils to send; for a `bit` point, the register with only its bit until `withRegister`. */
  readonly data: WriteData;
  readonly point?: PointConfig;
  /** A `bit` point: the value of its bit (a read-modify-write of the register). */
  readonly bit?: boolean;
  /** A `bit` point's register was read (`withRegister`): `data` is the whole register it leaves. */
  readonly registerRead?: boolean;
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
    // until its register is read (withRegister), a bit write's data is the register with only that bit: what the policy judges is the bit
    return point.table === 'coil' ? { ...at, data: [value] } : { ...at, data: [withBit(point, 0, value)], bit: value };
  }
  return { ...at, data: encodePoint(device, point, value) };
}

/** A `bit` point's plan once its register was read: that register with only the bit changed. */
export function withRegister(plan: WritePlan, register: number): WritePlan {
  if (plan.point === undefined || plan.bit === undefined) return plan;
  return { ...plan, data: [withBit(plan.point, register, plan.bit)], registerRead: true };
}

/** Decode one configured point from its registers or coil as they will be on the device. */
function decodeWritten(point: PointConfig, slice: WriteData): Pick<WrittenValue, 'value' | 'exact' | 'unknown'> {
  try {
    if (point.table === 'coil') return { value: decodeBits(point, slice as readonly boolean[]) };
    const regs = slice as readonly number[];
    const raw = decodeRegisters(point, regs);
    if (point.type === 'string') return { unknown: `is text (${JSON.stringify(raw)})` };
    // a bool register holding 65535 reads as true, but the device may read it otherwise: only the point's own encodings are known values
    if (point.type !== 'bit' && !isCanonical(point, regs)) return { unknown: `holds ${JSON.stringify(regs)}, which is not how its codec writes any ${point.type} value` };
    const value = applyScale(point, raw);
    if (value === null) return { unknown: 'has no value' };
    const exact = exactValue(point, raw);
    return exact === undefined ? { value } : { value, exact };
  } catch (err) {
    if (hasCode(err, 'GUARDIAN_E_DECODE')) return { unknown: `does not decode (${err.message})` };
    throw err;
  }
}

/** Register bits (as sent) that the `bit` points of `address` describe; 0xffff when a register-wide point covers it. */
function describedBits(points: readonly PointConfig[], address: number): number {
  let mask = 0;
  for (const p of points) {
    if (p.address > address || address >= p.address + registerCount(p)) continue;
    if (p.type !== 'bit') return 0xffff;
    mask |= bitMask(p);
  }
  return mask;
}

/**
 * What `data` written at `address` of `table` leaves in the device: each configured
 * point of that table the range touches, decoded with its own codec (a point only
 * partly inside the range has no known value: its other registers are not written),
 * and each written address no point covers, as its raw register or coil. A register
 * that only `bit` points describe, and not all 16 of its bits, gets an entry without
 * a point as well: the other bits mean something no point says.
 * `bitWrite`: a `bit` point's read-modify-write, which changes that bit alone (the
 * other bits are written back as read, in the same bus job): no entry for the bits no
 * point describes, and before the register is read (`whole` false) only that point.
 */
export function writtenValues(device: DeviceConfig, table: 'coil' | 'holding', address: number, data: WriteData, bitWrite?: { point: PointConfig; whole: boolean }): WrittenValue[] {
  const last = address + data.length - 1;
  const described = new Array<boolean>(data.length).fill(false);
  const out: WrittenValue[] = [];
  const points = bitWrite?.whole === false ? [bitWrite.point] : device.points.filter((p) => p.table === table);
  for (const point of points) {
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
    if (value === undefined) return;
    if (!seen) {
      out.push({ address: address + i, count: 1, value });
      return;
    }
    if (bitWrite !== undefined || table !== 'holding') return;
    const free = ~describedBits(points, address + i) & 0xffff;
    if (free !== 0) out.push({ address: address + i, count: 1, value, unknown: `bits 0x${free.toString(16).padStart(4, '0')} of the register (as sent) are in no point` });
  });
  return out;
}

/**
 * The question for the write policy: the data as it will be sent and what it means.
 * A `bit` write is asked twice: before its job is queued, on its bit alone (so a
 * refused one costs no bus read), and once its register was read, on the whole
 * register it leaves (every other point of that register too), as a recheck.
 */
export function writeRequest(plan: WritePlan, requester: string): WriteRequest {
  const bitWrite = plan.bit !== undefined && plan.point !== undefined ? { point: plan.point, whole: plan.registerRead === true } : undefined;
  return {
    device: plan.device.name, table: plan.table, address: plan.address, count: plan.data.length,
    kind: plan.point === undefined ? 'raw' : 'point', ...(plan.point === undefined ? {} : { point: plan.point.name }),
    data: plan.data, written: writtenValues(plan.device, plan.table, plan.address, plan.data, bitWrite), requester,
    ...(plan.registerRead === true ? { recheck: true } : {}),
  };
}
