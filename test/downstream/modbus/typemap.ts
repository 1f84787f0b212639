// Register maps that cover every point type, both byte orders, both word orders
// and scale/offset, on all four tables. Each point says what the device holds:
// either hand-written register words (known vectors, independent of codec.ts,
// so a bug that is symmetric in encode/decode cannot hide) or a value that
// codec.ts's encodeRegisters turns into words for the point as configured.
import type { Test } from 'tap';
import type { BusConfig, ByteOrder, PointConfig, Table } from '../../../src/config/types.js';
import type { PointValue, PollResult } from '../../../src/core/types.js';
import { encodeRegisters } from '../../../src/downstream/modbus/codec.js';
import type { UnitTables } from '../../fixtures/pymodbus.js';
import { pointsOf, reading } from './harness.js';

export type Source =
  | { readonly regs: readonly number[] }
  | { readonly encode: number | bigint | string | boolean }
  | { readonly bit: boolean };

export interface PointSpec {
  /** The point as written in YAML, without its address (allocated in table order). */
  readonly point: Readonly<Record<string, unknown>> & { readonly name: string; readonly table: Table; readonly type: string };
  readonly source: Source;
  /** The value the adapter must report (after scale/offset). */
  readonly expect: PointValue;
  /** Sits on the same address as the previous point of its table (two bits of one register). */
  readonly sameAddress?: boolean;
}

export interface Combo { readonly tag: 'ABCD' | 'CDAB' | 'BADC' | 'DCBA'; readonly byteOrder: ByteOrder; readonly wordOrder: ByteOrder }
export const COMBOS: readonly Combo[] = [
  { tag: 'ABCD', byteOrder: 'big', wordOrder: 'big' },
  { tag: 'CDAB', byteOrder: 'big', wordOrder: 'little' },
  { tag: 'BADC', byteOrder: 'little', wordOrder: 'big' },
  { tag: 'DCBA', byteOrder: 'little', wordOrder: 'little' },
];

/** Hand-written words, per order, for values whose big-endian bytes are known. */
const KNOWN: Readonly<Record<string, { readonly type: string; readonly expect: PointValue; readonly words: Readonly<Record<Combo['tag'], readonly number[]>> }>> = {
  // 0x12345678
  u32: { type: 'uint32', expect: 305419896, words: { ABCD: [0x1234, 0x5678], CDAB: [0x5678, 0x1234], BADC: [0x3412, 0x7856], DCBA: [0x7856, 0x3412] } },
  // -2 = 0xFFFFFFFE
  i32: { type: 'int32', expect: -2, words: { ABCD: [0xffff, 0xfffe], CDAB: [0xfffe, 0xffff], BADC: [0xffff, 0xfeff], DCBA: [0xfeff, 0xffff] } },
  // 1.5 = 0x3FC00000
  f32: { type: 'float32', expect: 1.5, words: { ABCD: [0x3fc0, 0x0000], CDAB: [0x0000, 0x3fc0], BADC: [0xc03f, 0x0000], DCBA: [0x0000, 0xc03f] } },
  // 0x0102030405060708 = 72623859790382856 > 2^53: a decimal string
  u64: {
    type: 'uint64', expect: '72623859790382856',
    words: { ABCD: [0x0102, 0x0304, 0x0506, 0x0708], CDAB: [0x0708, 0x0506, 0x0304, 0x0102], BADC: [0x0201, 0x0403, 0x0605, 0x0807], DCBA: [0x0807, 0x0605, 0x0403, 0x0201] },
  },
  // -2 = 0xFFFFFFFFFFFFFFFE
  i64: {
    type: 'int64', expect: -2,
    words: { ABCD: [0xffff, 0xffff, 0xffff, 0xfffe], CDAB: [0xfffe, 0xffff, 0xffff, 0xffff], BADC: [0xffff, 0xffff, 0xffff, 0xfeff], DCBA: [0xfeff, 0xffff, 0xffff, 0xffff] },
  },
  // pi = 0x400921FB54442D18
  f64: {
    type: 'float64', expect: 3.141592653589793,
    words: { ABCD: [0x4009, 0x21fb, 0x5444, 0x2d18], CDAB: [0x2d18, 0x5444, 0x21fb, 0x4009], BADC: [0x0940, 0xfb21, 0x4454, 0x182d], DCBA: [0x182d, 0x4454, 0xfb21, 0x0940] },
  },
};

/** Values written through encodeRegisters (what decodes back, exactly). */
const ENCODED: Readonly<Record<string, { readonly type: string; readonly value: number | bigint | string; readonly expect: PointValue }>> = {
  i32e: { type: 'int32', value: -123456789, expect: -123456789 },
  u32e: { type: 'uint32', value: 3000000000, expect: 3000000000 },
  f32e: { type: 'float32', value: 21.7, expect: 21.7 },
  i64e: { type: 'int64', value: '-9007199254740993', expect: '-9007199254740993' }, // below -2^53
  u64e: { type: 'uint64', value: 18446744073709551615n, expect: '18446744073709551615' },
  u64s: { type: 'uint64', value: 9007199254740991, expect: 9007199254740991 }, // 2^53 - 1: still a number
  f64e: { type: 'float64', value: -1234.5678, expect: -1234.5678 },
};

/** The full matrix: every multi-register type in all four orders, known vectors and encoded values. */
export function orderMatrix(table: Table, only?: readonly string[]): PointSpec[] {
  const specs: PointSpec[] = [];
  for (const combo of COMBOS) {
    const orders = { byteOrder: combo.byteOrder, wordOrder: combo.wordOrder };
    for (const [key, k] of Object.entries(KNOWN)) {
      if (only !== undefined && !only.includes(key)) continue;
      specs.push({ point: { name: `${table}_${key}_${combo.tag}`, table, type: k.type, ...orders }, source: { regs: k.words[combo.tag] }, expect: k.expect });
    }
    for (const [key, e] of Object.entries(ENCODED)) {
      if (only !== undefined && !only.includes(key)) continue;
      specs.push({ point: { name: `${table}_${key}_${combo.tag}`, table, type: e.type, ...orders }, source: { encode: e.value }, expect: e.expect });
    }
  }
  return specs;
}

/** 16-bit types, bits, bools on registers and strings, both byte orders, on one register table. */
export function singleRegisterSpecs(table: 'input' | 'holding'): PointSpec[] {
  const p = (name: string, rest: Record<string, unknown>): PointSpec['point'] => ({ name: `${table}_${name}`, table, type: 'uint16', ...rest });
  return [
    { point: p('i16', { type: 'int16' }), source: { regs: [0xfffe] }, expect: -2 },
    { point: p('i16le', { type: 'int16', byteOrder: 'little' }), source: { regs: [0xfeff] }, expect: -2 },
    { point: p('i16min', { type: 'int16' }), source: { encode: -32768 }, expect: -32768 },
    { point: p('u16', { type: 'uint16' }), source: { regs: [0xffff] }, expect: 65535 },
    { point: p('u16le', { type: 'uint16', byteOrder: 'little' }), source: { regs: [0x3412] }, expect: 0x1234 },
    { point: p('u16enc', { type: 'uint16', byteOrder: 'little' }), source: { encode: 513 }, expect: 513 },
    // scale / offset
    { point: p('u16x01', { type: 'uint16', scale: 0.1 }), source: { regs: [215] }, expect: 21.5 },
    { point: p('u16x01off', { type: 'uint16', scale: 0.1, offset: -1.5 }), source: { regs: [215] }, expect: 20 },
    { point: p('i16scaled', { type: 'int16', scale: 0.5, offset: 10 }), source: { encode: -40 }, expect: -10 },
    { point: p('i32scaled', { type: 'int32', wordOrder: 'little', scale: 0.1, offset: 100 }), source: { encode: -215 }, expect: 78.5 },
    { point: p('u64scaled', { type: 'uint64', scale: 0.001 }), source: { encode: 123456789012345 }, expect: 123456789012.345 },
    { point: p('f32scaled', { type: 'float32', scale: 2, offset: 1 }), source: { encode: 1.25 }, expect: 3.5 },
    // bits: bit 3 and bit 4 of one register (0x0008), and a byte-swapped register
    { point: p('bit3', { type: 'bit', bit: 3 }), source: { regs: [0x0008] }, expect: true },
    { point: p('bit4', { type: 'bit', bit: 4 }), source: { regs: [0x0008] }, expect: false, sameAddress: true },
    { point: p('bit0le', { type: 'bit', bit: 0, byteOrder: 'little' }), source: { regs: [0x0100] }, expect: true },
    { point: p('bit8le', { type: 'bit', bit: 8, byteOrder: 'little' }), source: { regs: [0x0100] }, expect: false, sameAddress: true },
    { point: p('bit15enc', { type: 'bit', bit: 15 }), source: { encode: true }, expect: true },
    // bool on a register: any non-zero value is true
    { point: p('boolreg', { type: 'bool' }), source: { regs: [0x0100] }, expect: true },
    { point: p('boolreg0', { type: 'bool' }), source: { regs: [0x0000] }, expect: false },
    { point: p('boolrege', { type: 'bool', byteOrder: 'little' }), source: { encode: true }, expect: true },
    // strings: odd character count, NUL padding, per-register byte swap; word order is ignored
    { point: p('str', { type: 'string', length: 3 }), source: { regs: [0x4142, 0x4300, 0x0000] }, expect: 'ABC' },
    { point: p('strle', { type: 'string', length: 3, byteOrder: 'little' }), source: { regs: [0x4241, 0x0043, 0x0000] }, expect: 'ABC' },
    { point: p('strwl', { type: 'string', length: 3, wordOrder: 'little' }), source: { regs: [0x4142, 0x4300, 0x0000] }, expect: 'ABC' },
    // 'Kessel Ø #3': 11 characters, one latin1 (0xD8), five NUL bytes of padding
    { point: p('strenc', { type: 'string', length: 8 }), source: { encode: 'Kessel Ø #3' }, expect: 'Kessel Ø #3' },
    { point: p('strhand', { type: 'string', length: 3 }), source: { regs: [0x4bd8, 0x2133, 0x2000] }, expect: 'KØ!3' },
  ];
}

export function bitSpecs(table: 'coil' | 'discrete'): PointSpec[] {
  return [
    { point: { name: `${table}_on`, table, type: 'bool' }, source: { bit: true }, expect: true },
    { point: { name: `${table}_off`, table, type: 'bool' }, source: { bit: false }, expect: false },
    { point: { name: `${table}_on2`, table, type: 'bool' }, source: { bit: true }, expect: true },
  ];
}

const SPAN: Readonly<Record<string, number>> = { int32: 2, uint32: 2, float32: 2, int64: 4, uint64: 4, float64: 4 };

/** Points with addresses: each table's points are laid out one after another from `base`. */
export function layout(specs: readonly PointSpec[], base = 0): { points: Record<string, unknown>[]; addresses: Map<string, number> } {
  const next: Partial<Record<Table, number>> = {};
  const last: Partial<Record<Table, number>> = {};
  const addresses = new Map<string, number>();
  const points = specs.map((s) => {
    const table = s.point.table;
    const bitTable = table === 'coil' || table === 'discrete';
    const span = bitTable ? 1 : s.point.type === 'string' ? Number(s.point['length']) : (SPAN[s.point.type] ?? 1);
    const address = s.sameAddress === true ? (last[table] ?? base) : (next[table] ?? base);
    if (s.sameAddress !== true) next[table] = address + span;
    last[table] = address;
    addresses.set(s.point.name, address);
    return { ...s.point, address };
  });
  return { points, addresses };
}

const FIXTURE_TABLE = { coil: 'coils', discrete: 'discrete', input: 'input', holding: 'holding' } as const;

/** What the device holds, for the points as the loader configured them. */
export function deviceTables(bus: BusConfig, device: string, specs: readonly PointSpec[]): UnitTables {
  const points = pointsOf(bus, device);
  const tables: UnitTables = {};
  for (const s of specs) {
    const p = points.get(s.point.name) as PointConfig;
    const key = FIXTURE_TABLE[p.table];
    if ('bit' in s.source) {
      (tables[key as 'coils' | 'discrete'] ??= {})[p.address] = [s.source.bit];
    } else {
      const words = 'regs' in s.source ? [...s.source.regs] : encodeRegisters(p, s.source.encode);
      (tables[key as 'holding' | 'input'] ??= {})[p.address] = words;
    }
  }
  return tables;
}

/** Every spec's reading in `result` is good with exactly the expected value. */
export function checkValues(t: Test, result: PollResult, specs: readonly PointSpec[]): void {
  t.equal(result.readings.length, specs.length, `${result.device}: one reading per point`);
  const wrong: string[] = [];
  for (const s of specs) {
    const r = reading(result, s.point.name);
    if (r.quality !== 'good' || r.value !== s.expect) {
      wrong.push(`${s.point.name}: got ${JSON.stringify(r.value)} (${r.quality}), want ${JSON.stringify(s.expect)}`);
    }
  }
  t.same(wrong, [], `${result.device}: all ${specs.length} points good with the exact expected values`);
}
