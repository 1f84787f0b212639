// fast-check generators for the write-policy property tests: random point definitions
// (every type, byte/word order, scale, offset, bit fields, overlapping points), random
// non-overlapping write policies, random commands (numbers, strings, arrays, -0, huge,
// fractional, raw register and coil writes over random ranges), random device images;
// and the oracle: what a register image means for the policy, decoded independently of
// the planner (the codec is the definition of how a point is read).
import fc from 'fast-check';
import type { DeviceConfig, PointConfig, PointType } from '../../../src/config/types.js';
import { decodeBits, decodeRegisters, encodeRegisters, registerCount } from '../../../src/downstream/modbus/codec.js';
import type { WriteRule } from '../../../src/firewall/manifest.js';

/** Addresses 0..SPACE-1 of the holding and coil tables exist on the test device. */
export const SPACE = 40;

const TYPES: readonly PointType[] = ['bool', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64', 'string', 'bit', 'bit', 'bit'];
const order = fc.constantFrom<'big' | 'little'>('big', 'little');

const pointArb = (i: number): fc.Arbitrary<PointConfig> => fc.record({
  coil: fc.boolean(),
  type: fc.constantFrom(...TYPES),
  length: fc.integer({ min: 1, max: 4 }),
  bit: fc.integer({ min: 0, max: 15 }),
  byteOrder: order,
  wordOrder: order,
  scale: fc.constantFrom(1, 1, 0.1, 10, 0.5, -2, 0.001, 2, 3),
  offset: fc.constantFrom(0, 0, -40, 100, 0.5),
  at: fc.nat({ max: SPACE - 1 }),
}).map(({ coil, type, length, bit, byteOrder, wordOrder, scale, offset, at }) => {
  const base = { name: `p${i}`, byteOrder, wordOrder, deadband: 0, reportOnChange: false };
  if (coil) return { ...base, table: 'coil', address: at, type: 'bool', scale: 1, offset: 0, length: 1 } satisfies PointConfig;
  const draft: PointConfig = { ...base, table: 'holding', address: 0, type, scale, offset, ...(type === 'string' ? { length } : {}), ...(type === 'bit' ? { bit } : {}) };
  const count = registerCount(draft);
  return { ...draft, address: Math.min(at, SPACE - count), length: count };
});

export const deviceArb: fc.Arbitrary<DeviceConfig> = fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => pointArb(i)))).map((points) => ({
  name: 'dev', unitId: 1, pollIntervalMs: 600_000, timeoutMs: 2000, retries: 0, backoff: { initialMs: 1000, maxMs: 60000 },
  maxRegistersPerRequest: 123, maxBitsPerRequest: 2000, maxGap: 0, byteOrder: 'big', wordOrder: 'big', points,
}));

// besides random ones: limits beyond 2^53 (64-bit points), ones float32 cannot hold, the edges of a bool
const limit = fc.oneof(fc.integer({ min: -70000, max: 70000 }), fc.double({ min: -1e6, max: 1e6, noNaN: true }),
  fc.constantFrom(0, -0, 1e20, -1e20, 2 ** 60, -(2 ** 60), 2 ** 53, 250.1, 0.3, 25.7, 1, 0));

/** Non-overlapping rules per table: cut the address space into segments, each without a rule, open, or limited. */
const tableRules = (table: 'coil' | 'holding'): fc.Arbitrary<WriteRule[]> => fc.tuple(
  fc.uniqueArray(fc.integer({ min: 1, max: SPACE - 1 }), { maxLength: 8 }),
  fc.array(fc.record({ kind: fc.constantFrom('none', 'open', 'limited', 'limited'), a: limit, b: limit, verify: fc.boolean() }), { minLength: 9, maxLength: 9 }),
).map(([cuts, segs]) => {
  const bounds = [0, ...[...cuts].sort((x, y) => x - y), SPACE];
  const rules: WriteRule[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const seg = segs[i];
    if (seg === undefined || seg.kind === 'none') continue;
    const from = bounds[i] as number;
    const to = (bounds[i + 1] as number) - 1;
    const limits = seg.kind === 'limited' && table === 'holding' ? { min: Math.min(seg.a, seg.b), max: Math.max(seg.a, seg.b) } : {};
    rules.push({ table, from, to, verify: seg.verify, ...limits });
  }
  return rules;
});

export const rulesArb: fc.Arbitrary<WriteRule[]> = fc.tuple(tableRules('holding'), tableRules('coil')).map(([h, c]) => [...h, ...c]);

/** The manifest's Allow entries for `rules`. */
export function allowOf(rules: readonly WriteRule[]): Record<string, unknown>[] {
  return rules.map((r) => ({
    Table: r.table, Addresses: [r.from, r.to], Verify: r.verify,
    ...(r.min === undefined ? {} : { Min: r.min }), ...(r.max === undefined ? {} : { Max: r.max }),
  }));
}

const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -70000, max: 70000 }),
  fc.double({ noNaN: false }),
  fc.double({ min: -1000, max: 1000, noNaN: true }),
  fc.constantFrom(-0, 0, 1e300, -1e300, 2 ** 53 + 1, 0.1, 4294967295, 65535, 65536, -32768),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map((b) => b.toString()),
  fc.integer({ min: -200, max: 200 }).map(String),
  fc.string({ maxLength: 9 }),
  { arbitrary: fc.boolean(), weight: 4 },
  fc.array(fc.integer(), { maxLength: 3 }),
);

/**
 * Raw registers just around a value at one of the device's points: a 64-bit raw value near
 * 2^59 / 2^60 / 2^53 (a scale moves it past a limit by less than a double's step), a float
 * near a limit, a bool register with any bits set. Written raw at the point's address.
 */
const nearPointArb = (device: DeviceConfig): fc.Arbitrary<Record<string, unknown>> => fc.constantFrom(...device.points).chain((point) => {
  const at = (values: number[]): Record<string, unknown> => ({ table: 'holding', address: point.address, values });
  if (point.table !== 'holding' || point.type === 'string') return fc.constant(at([0]));
  if (point.type === 'bool' || point.type === 'bit') return fc.integer({ min: 0, max: 0xffff }).map((v) => at([v]));
  if (point.type === 'float32' || point.type === 'float64') {
    return fc.tuple(fc.constantFrom(250.1, 2501, 0.3, 3, 25.7, 257, 1e6), fc.integer({ min: -3, max: 3 })).map(([v, k]) => at(encodeRegisters(point, v * (1 + k * 2 ** -50))));
  }
  if (point.type === 'int64' || point.type === 'uint64') {
    return fc.tuple(fc.constantFrom(2n ** 59n, 2n ** 60n, 2n ** 53n, 2n ** 58n / 3n * 2n), fc.bigInt({ min: -3n, max: 3n })).map(([v, d]) => at(encodeRegisters(point, v + d)));
  }
  return fc.constant(at([0]));
});

/** A command payload for the device's points, or raw over a random range. */
export const payloadArb = (device: DeviceConfig): fc.Arbitrary<Record<string, unknown>> => fc.oneof(
  nearPointArb(device),
  fc.record({ point: fc.constantFrom(...device.points.map((p) => p.name), 'nope'), value: valueArb }),
  fc.nat({ max: SPACE - 1 }).chain((address) => fc.record({
    table: fc.constant('holding'), address: fc.constant(address),
    values: fc.array(fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0, 0xffff, 0x7fc0, 0x8000, 0x7f80)), { minLength: 1, maxLength: SPACE - address }),
  })),
  fc.nat({ max: SPACE - 1 }).chain((address) => fc.record({
    table: fc.constant('coil'), address: fc.constant(address), values: fc.array(fc.boolean(), { minLength: 1, maxLength: SPACE - address }),
  })),
);

/** A register image of the holding table and of the coils. */
export const imageArb = fc.record({
  holding: fc.array(fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constant(0)), { minLength: SPACE, maxLength: SPACE }),
  coils: fc.array(fc.boolean(), { minLength: SPACE, maxLength: SPACE }),
});

/** An exact rational p / q (q > 0), independent of the code under test. */
interface Q { p: bigint; q: bigint }

/** The exact value of a finite double, from its bits. */
function ofDoubleBits(x: number): Q {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const sign = bits >> 63n === 1n ? -1n : 1n;
  const exp = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  const mant = exp === 0 ? frac : frac | (1n << 52n);
  const e = (exp === 0 ? 1 : exp) - 1075;
  return e >= 0 ? { p: sign * mant * (1n << BigInt(e)), q: 1n } : { p: sign * mant, q: 1n << BigInt(-e) };
}

/** A config or manifest number as the decimal written: integers exactly, others their shortest decimal. */
function ofConfig(x: number): Q {
  if (Number.isInteger(x)) return { p: BigInt(x), q: 1n };
  const [mant = '0', exp = '0'] = String(x).split('e');
  const [int = '0', frac = ''] = mant.split('.');
  const e = Number(exp) - frac.length;
  const digits = BigInt(`${int}${frac}`);
  return e >= 0 ? { p: digits * 10n ** BigInt(e), q: 1n } : { p: digits, q: 10n ** BigInt(-e) };
}

const lt = (a: Q, b: Q): boolean => a.p * b.q < b.p * a.q;

/** The point's engineering value on the device, exactly: raw (as held) * scale + offset. */
function exactEngineering(point: PointConfig, raw: unknown): Q | undefined {
  let r: Q;
  if (typeof raw === 'boolean') return { p: raw ? 1n : 0n, q: 1n };
  if (typeof raw === 'string' && /^-?\d+$/.test(raw)) r = { p: BigInt(raw), q: 1n };
  else if (typeof raw === 'number' && Number.isFinite(raw)) r = ofDoubleBits(point.type === 'float32' ? Math.fround(raw) : raw);
  else return undefined;
  const s = ofConfig(point.scale);
  const o = ofConfig(point.offset);
  return { p: r.p * s.p * o.q + o.p * r.q * s.q, q: r.q * s.q * o.q };
}

function within(value: Q, rule: WriteRule): boolean {
  return (rule.min === undefined || !lt(value, ofConfig(rule.min))) && (rule.max === undefined || !lt(ofConfig(rule.max), value));
}

/**
 * The invariant, on the device's image before and after a write of `count` at `address`:
 * - every address the write touched that lies in a rule with limits belongs to a configured
 *   point, and a register only `bit` points describe changed no bit outside them;
 * - every configured point that the write touched and that reaches into a limited rule holds
 *   exactly what its codec writes for some value (a bool register is 0 or 1, not 65535), and
 *   that value — raw as the device holds it, times scale, plus offset, exactly — is within the rule.
 * Returns what is wrong, or undefined.
 */
export function violation(device: DeviceConfig, rules: readonly WriteRule[], table: 'coil' | 'holding', address: number, count: number, image: readonly (number | boolean)[], before?: readonly (number | boolean)[]): string | undefined {
  const limited = rules.filter((r) => r.table === table && (r.min !== undefined || r.max !== undefined));
  const last = address + count - 1;
  const points = device.points.filter((p) => p.table === table);
  for (let a = address; a <= last; a++) {
    const rule = limited.find((r) => r.from <= a && a <= r.to);
    if (rule === undefined) continue;
    const here = points.filter((p) => p.address <= a && a < p.address + registerCount(p));
    if (here.length === 0) return `${table} ${a} is limited, written, and no point describes it`;
    if (table === 'holding' && here.every((p) => p.type === 'bit')) {
      const mask = here.reduce((m, p) => m | (encodeRegisters(p, true)[0] ?? 0), 0);
      const changed = ((image[a] as number) ^ ((before?.[a] as number | undefined) ?? 0)) & ~mask & 0xffff;
      if (changed !== 0) return `${table} ${a} is limited and bits 0x${changed.toString(16)} no point describes changed`;
    }
  }
  for (const p of points) {
    const end = p.address + registerCount(p) - 1;
    if (end < address || p.address > last) continue;
    for (const rule of limited) {
      if (rule.to < p.address || rule.from > end) continue;
      let raw: unknown;
      const slice = image.slice(p.address, end + 1);
      try {
        raw = table === 'coil' ? decodeBits(p, slice as boolean[]) : decodeRegisters(p, slice as number[]);
      } catch (err) {
        return `point ${p.name} does not decode after the write: ${(err as Error).message}`;
      }
      if (table === 'holding' && p.type !== 'bit' && p.type !== 'string') {
        const again = encodeRegisters(p, raw as number | string | boolean);
        if (again.some((r, i) => r !== slice[i])) return `point ${p.name} holds ${JSON.stringify(slice)}, which its codec does not write for any value`;
      }
      const value = exactEngineering(p, raw);
      if (value === undefined || !within(value, rule)) return `point ${p.name} holds ${JSON.stringify(raw)} (raw), outside [${rule.min}, ${rule.max}] of ${table} ${rule.from}-${rule.to}`;
    }
  }
  return undefined;
}
