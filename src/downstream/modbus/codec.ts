/**
 * Modbus data ⇄ point values. Pure functions, no I/O.
 *
 * Register layout (per point):
 * - `byteOrder` is the order of the two bytes inside each 16-bit register:
 *   'big' (Modbus standard, high byte first) or 'little' (every register byte-swapped).
 *   It applies to every register type, 16-bit ones and `bit` included.
 * - `wordOrder` is the order of the registers of a multi-register number:
 *   'big' = most significant register first ("ABCD"), 'little' = least significant
 *   first ("CDAB"; for 64-bit the four registers are fully reversed).
 *   Strings ignore `wordOrder`: their registers are always read in address order.
 *
 * Every failure throws GuardianError `GUARDIAN_E_DECODE` (a bad reading, not a value).
 */
import type { PointConfig, Table } from '../../config/types.js';
import type { PointValue } from '../../core/types.js';
import { GuardianError } from '../../core/errors.js';
import { add, mul, ofBigInt, ofDouble, ofWritten, toText } from '../../core/decimal.js';

const REPLACEMENT = '\uFFFD';
const DECIMAL_INTEGER = /^-?\d+$/;

function fail(point: PointConfig, message: string): never {
  throw new GuardianError('GUARDIAN_E_DECODE', `point ${point.name}: ${message}`, {
    point: point.name, type: point.type, table: point.table, address: point.address,
  });
}

/** Coils and discrete inputs carry bits; input and holding registers carry 16-bit words. */
export function isBitTable(table: Table): boolean {
  return table === 'coil' || table === 'discrete';
}

/**
 * Registers (register tables) or bits (coil/discrete: always 1) a point spans.
 * For strings this is `point.length` (required); for other types it follows from
 * the type and any `length` in the config is ignored.
 */
export function registerCount(point: PointConfig): number {
  if (isBitTable(point.table)) return 1;
  switch (point.type) {
    case 'bool': case 'bit': case 'int16': case 'uint16': return 1;
    case 'int32': case 'uint32': case 'float32': return 2;
    case 'int64': case 'uint64': case 'float64': return 4;
    case 'string': {
      const length = point.length;
      if (length === undefined || !Number.isInteger(length) || length < 1) {
        return fail(point, 'a string point needs a length (registers) of at least 1');
      }
      return length;
    }
  }
}

function checkRegisters(point: PointConfig, regs: readonly number[]): void {
  if (isBitTable(point.table)) fail(point, `table ${point.table} holds bits, not registers`);
  const expected = registerCount(point);
  if (regs.length !== expected) fail(point, `expected ${expected} registers, got ${regs.length}`);
  for (const r of regs) {
    if (!Number.isInteger(r) || r < 0 || r > 0xffff) fail(point, `register value ${r} is not a uint16`);
  }
}

function swap16(reg: number): number {
  return ((reg & 0xff) << 8) | (reg >> 8);
}

/** Registers as the device sent them → register values in the standard (big) byte order. */
function normalizeBytes(point: PointConfig, regs: readonly number[]): number[] {
  return point.byteOrder === 'little' ? regs.map(swap16) : [...regs];
}

/** Registers → bytes, most significant first (numbers) or in address order (strings). */
function toBytes(point: PointConfig, regs: readonly number[], applyWordOrder: boolean): Uint8Array {
  const words = normalizeBytes(point, regs);
  if (applyWordOrder && point.wordOrder === 'little') words.reverse();
  const bytes = new Uint8Array(words.length * 2);
  words.forEach((w, i) => { bytes[2 * i] = w >> 8; bytes[2 * i + 1] = w & 0xff; });
  return bytes;
}

/** Inverse of toBytes. */
function fromBytes(point: PointConfig, bytes: Uint8Array, applyWordOrder: boolean): number[] {
  const words: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) words.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  if (applyWordOrder && point.wordOrder === 'little') words.reverse();
  return normalizeBytes(point, words);
}

function isControl(byte: number): boolean {
  return byte < 0x20 || (byte >= 0x7f && byte <= 0x9f);
}

function bigToValue(v: bigint): number | string {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v.toString();
}

/** The shortest decimal that is the same float32 (21.7, not 21.700000762939453). */
function shortestFloat32(v: number): number {
  if (v === 0) return v; // keeps -0: its register is 0x8000, not 0
  for (let p = 1; p < 9; p++) {
    const c = Number(v.toPrecision(p));
    if (Math.fround(c) === v) return c;
  }
  return v;
}

function bitIndex(point: PointConfig): number {
  const bit = point.bit;
  if (bit === undefined || !Number.isInteger(bit) || bit < 0 || bit > 15) {
    return fail(point, 'a bit point needs a bit number 0..15');
  }
  return bit;
}

/**
 * Decode exactly `registerCount(point)` uint16 registers (modbus-serial's `.data`).
 * - int64/uint64: a number when it is a safe integer, else a decimal string.
 * - float32/float64: NaN and ±Infinity throw (bad quality, not a value). A float32 is
 *   returned as the shortest decimal that converts back to the same float32 (21.7,
 *   not 21.700000762939453); `Math.fround` of the result is the register value.
 * - string: bytes in address order (after the per-register byte swap), cut at the
 *   first NUL, trailing spaces (0x20) trimmed, read as latin1. Other control
 *   characters (0x01–0x1F, 0x7F–0x9F) become U+FFFD instead of failing the reading.
 * - bit: `(reg >> bit) & 1` after the byte swap; bool: `reg !== 0`.
 */
export function decodeRegisters(point: PointConfig, regs: readonly number[]): PointValue {
  checkRegisters(point, regs);
  return decodeRegistersAt(point, regs, 0);
}

/** One scratch buffer for every numeric decode: the hot path allocates nothing. */
const scratch = new DataView(new ArrayBuffer(8));

/**
 * The hot path of a poll: decode a point straight from a read's register array,
 * starting at `offset`, without copying. The registers are modbus-serial's
 * parsed uint16 values; only the length is checked (decodeRegisters checks all).
 */
export function decodeRegistersAt(point: PointConfig, data: readonly number[], offset: number): PointValue {
  const count = registerCount(point);
  if (offset < 0 || offset + count > data.length) fail(point, `needs ${count} registers at offset ${offset}, the response has ${data.length}`);
  if (point.type === 'string') {
    return decodeString(toBytes(point, data.slice(offset, offset + count), false));
  }
  const swapBytes = point.byteOrder === 'little';
  const reverseWords = point.wordOrder === 'little';
  for (let i = 0; i < count; i++) {
    const w = data[reverseWords ? offset + count - 1 - i : offset + i] ?? 0;
    scratch.setUint16(2 * i, swapBytes ? swap16(w) : w);
  }
  switch (point.type) {
    case 'bool': return scratch.getUint16(0) !== 0;
    case 'bit': return ((scratch.getUint16(0) >> bitIndex(point)) & 1) === 1;
    case 'int16': return scratch.getInt16(0);
    case 'uint16': return scratch.getUint16(0);
    case 'int32': return scratch.getInt32(0);
    case 'uint32': return scratch.getUint32(0);
    case 'int64': return bigToValue(scratch.getBigInt64(0));
    case 'uint64': return bigToValue(scratch.getBigUint64(0));
    case 'float32': case 'float64': {
      const v = point.type === 'float32' ? scratch.getFloat32(0) : scratch.getFloat64(0);
      if (!Number.isFinite(v)) fail(point, `${point.type} reading is ${v}`);
      return point.type === 'float32' ? shortestFloat32(v) : v;
    }
  }
}

function decodeString(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  let s = '';
  for (const b of nul < 0 ? bytes : bytes.subarray(0, nul)) s += isControl(b) ? REPLACEMENT : String.fromCharCode(b);
  return s.replace(/ +$/, '');
}

/** Decode a coil / discrete-input point from exactly one bit. */
export function decodeBits(point: PointConfig, bits: readonly boolean[]): boolean {
  if (!isBitTable(point.table)) fail(point, `table ${point.table} holds registers, not bits`);
  const [bit] = bits;
  if (bits.length !== 1 || typeof bit !== 'boolean') fail(point, `expected 1 bit, got ${bits.length}`);
  return bit;
}

const placesCache = new WeakMap<PointConfig, number>();

/** Decimal places of a point's scale and offset, worked out once per (frozen) point config. */
function scalePlaces(point: PointConfig): number {
  let places = placesCache.get(point);
  if (places === undefined) {
    places = Math.max(decimalPlaces(point.scale), decimalPlaces(point.offset));
    placesCache.set(point, places);
  }
  return places;
}

function decimalPlaces(x: number): number {
  const [mantissa = '', exponent = '0'] = String(Math.abs(x)).split('e');
  const fraction = mantissa.split('.')[1] ?? '';
  return Math.min(100, Math.max(0, fraction.length - Number(exponent)));
}

/**
 * `value * scale + offset` for numeric values when scale !== 1 or offset !== 0;
 * identity otherwise (results are then exactly the raw decode). Booleans, strings of
 * `string` points and null pass through. A decimal-string 64-bit value is converted
 * through Number when scaled (precision beyond 2^53 is lost).
 *
 * Float noise is rounded away, only in scaled results:
 * - integer raw values (all integer types): rounded to the decimal places of `scale`
 *   and `offset` (the exact decimal result: 215 * 0.1 → 21.5, and large counters keep
 *   every digit: 123456789012345 * 0.001 → 123456789012.345);
 * - non-integer raw values (floats): rounded to 12 significant digits.
 * A non-finite result throws GUARDIAN_E_DECODE.
 */
export function applyScale(point: PointConfig, value: PointValue): PointValue {
  if (point.scale === 1 && point.offset === 0) return value;
  let raw: number;
  if (typeof value === 'number') raw = value;
  else if (typeof value === 'string' && (point.type === 'int64' || point.type === 'uint64') && DECIMAL_INTEGER.test(value)) raw = Number(value);
  else return value;
  const scaled = raw * point.scale + point.offset;
  if (!Number.isFinite(scaled)) fail(point, `scaled value ${raw} * ${point.scale} + ${point.offset} is not finite`);
  const rounded = Number.isInteger(raw)
    ? Number(scaled.toFixed(scalePlaces(point)))
    : Number(scaled.toPrecision(12));
  return rounded === 0 ? 0 : rounded; // no -0
}

/**
 * The exact engineering value of a raw decode (`decodeRegisters`) as decimal text:
 * `raw * scale + offset` with no rounding, the raw value exactly as the device holds
 * it (a 64-bit integer in full, a float32 as the float32 value, not its shortest
 * decimal) and `scale` / `offset` as the decimals written in the config. What the
 * write policy compares with a limit; `applyScale` is for display. Undefined for
 * booleans and text.
 */
export function exactValue(point: PointConfig, raw: PointValue): string | undefined {
  let value;
  if (typeof raw === 'number' && (point.type === 'float32' || point.type === 'float64')) {
    value = ofDouble(point.type === 'float32' ? Math.fround(raw) : raw);
  } else if ((typeof raw === 'number' && Number.isInteger(raw)) || (typeof raw === 'string' && DECIMAL_INTEGER.test(raw) && point.type !== 'string')) {
    value = ofBigInt(BigInt(raw));
  } else {
    return undefined;
  }
  if (point.scale !== 1 || point.offset !== 0) value = add(mul(value, ofWritten(point.scale)), ofWritten(point.offset));
  return toText(value);
}

/**
 * Whether `regs` are exactly what the point's codec writes for the value they decode
 * to (a bool register holding 65535 decodes to true but is not the encoding of true;
 * every integer and finite float is). Throws GUARDIAN_E_DECODE when they do not decode.
 */
export function isCanonical(point: PointConfig, regs: readonly number[]): boolean {
  if (point.type === 'string' || point.type === 'bit') return false;
  const back = encodeRegisters(point, decodeRegisters(point, regs) as number | string | boolean);
  return back.length === regs.length && back.every((r, i) => r === regs[i]);
}

/** The register bits a `bit` point is (its mask as the device sends the register: `byteOrder` applies). */
export function bitMask(point: PointConfig): number {
  return withBit(point, 0, true);
}

/**
 * A `bit` point's register with its bit set or cleared and every other bit as in
 * `register` (as the device sent it: `byteOrder` applies). The write half of a
 * read-modify-write: writing a bit point must not change its neighbours.
 */
export function withBit(point: PointConfig, register: number, value: boolean): number {
  if (point.type !== 'bit') fail(point, `a ${point.type} point is not one bit of a register`);
  if (!Number.isInteger(register) || register < 0 || register > 0xffff) fail(point, `register value ${register} is not a uint16`);
  const mask = 1 << bitIndex(point);
  const standard = point.byteOrder === 'little' ? swap16(register) : register;
  const next = value ? standard | mask : standard & ~mask & 0xffff;
  return point.byteOrder === 'little' ? swap16(next) : next;
}

function toBigInt(point: PointConfig, value: number | bigint | string | boolean): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'string' && DECIMAL_INTEGER.test(value)) return BigInt(value);
  return fail(point, `cannot encode ${String(value)} as ${point.type}`);
}

const INT_RANGES = {
  int16: [-(2n ** 15n), 2n ** 15n - 1n], uint16: [0n, 2n ** 16n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n], uint32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n], uint64: [0n, 2n ** 64n - 1n],
} as const;

/**
 * Exact inverse of decodeRegisters: `encodeRegisters(p, decodeRegisters(p, regs))` gives
 * `regs` back for every decodable regs (strings: up to the first NUL), and
 * `decodeRegisters(p, encodeRegisters(p, v))` gives `v` back (64-bit values beyond 2^53
 * as a decimal string; float32 as its shortest decimal; strings without trailing
 * spaces or control characters). Integers accept number, bigint or a decimal
 * string and must fit the type; floats accept finite numbers (float32 rounds);
 * bool and bit accept booleans; strings accept latin1 text without control
 * characters that fits in 2 × length bytes (NUL-padded).
 * `bit` encodes a register with only that bit set (or 0): writing it to a device needs
 * a read-modify-write. Throws GUARDIAN_E_DECODE on anything that does not fit.
 */
export function encodeRegisters(point: PointConfig, value: number | bigint | string | boolean): number[] {
  if (isBitTable(point.table)) fail(point, `table ${point.table} holds bits, not registers`);
  const count = registerCount(point);
  const bytes = new Uint8Array(count * 2);
  const view = new DataView(bytes.buffer);
  switch (point.type) {
    case 'string': {
      if (typeof value !== 'string') fail(point, 'a string point needs a string value');
      if (value.length > bytes.length) fail(point, `string of ${value.length} characters exceeds ${bytes.length} bytes`);
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        if (c > 0xff || isControl(c)) fail(point, `character U+${c.toString(16).padStart(4, '0')} cannot be encoded`);
        bytes[i] = c;
      }
      return fromBytes(point, bytes, false);
    }
    case 'bool': case 'bit': {
      if (typeof value !== 'boolean') fail(point, `a ${point.type} point needs a boolean value`);
      view.setUint16(0, value ? (point.type === 'bit' ? 1 << bitIndex(point) : 1) : 0);
      break;
    }
    case 'float32': case 'float64': {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(point, `cannot encode ${String(value)} as ${point.type}`);
      // a finite number past float32's largest value (by up to half a unit) rounds to Infinity on the wire
      if (point.type === 'float32' && !Number.isFinite(Math.fround(value))) fail(point, `${value} is out of range for float32`);
      if (point.type === 'float32') view.setFloat32(0, value); else view.setFloat64(0, value);
      break;
    }
    default: {
      const v = toBigInt(point, value);
      const [min, max] = INT_RANGES[point.type];
      if (v < min || v > max) fail(point, `${v} is out of range for ${point.type}`);
      if (point.type === 'int64') view.setBigInt64(0, v);
      else if (point.type === 'uint64') view.setBigUint64(0, v);
      else if (count === 2) view.setUint32(0, Number(BigInt.asUintN(32, v)));
      else view.setUint16(0, Number(BigInt.asUintN(16, v)));
    }
  }
  return fromBytes(point, bytes, true);
}
