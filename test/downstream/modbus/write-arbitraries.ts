// fast-check generators for the write-policy property tests: random point definitions
// (every type, byte/word order, scale, offset, bit fields, overlapping points), random
// non-overlapping write policies, random commands (numbers, strings, arrays, -0, huge,
// fractional, raw register and coil writes over random ranges), random device images;
// and the oracle: what a register image means for the policy, decoded independently of
// the planner (the codec is the definition of how a point is read).
import fc from 'fast-check';
import type { DeviceConfig, PointConfig, PointType } from '../../../src/core/config.js';
import { applyScale, decodeBits, decodeRegisters, registerCount } from '../../../src/downstream/modbus/codec.js';
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
  scale: fc.constantFrom(1, 1, 0.1, 10, 0.5, -2, 0.001),
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

const limit = fc.oneof(fc.integer({ min: -70000, max: 70000 }), fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.constantFrom(0, -0, 1e20, -1e20));

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

/** A command payload for the device's points, or raw over a random range. */
export const payloadArb = (device: DeviceConfig): fc.Arbitrary<Record<string, unknown>> => fc.oneof(
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

function within(value: unknown, rule: WriteRule): boolean {
  let v: number | bigint;
  if (typeof value === 'boolean') v = value ? 1 : 0;
  else if (typeof value === 'number' && Number.isFinite(value)) v = value;
  else if (typeof value === 'string' && /^-?\d+$/.test(value)) v = BigInt(value);
  else return false;
  // an integer against a fractional limit, exactly: x >= 2.5 when x >= 3
  const ge = (x: number | bigint, lim: number): boolean => (typeof x === 'bigint' ? x >= BigInt(Math.ceil(lim)) : x >= lim);
  const le = (x: number | bigint, lim: number): boolean => (typeof x === 'bigint' ? x <= BigInt(Math.floor(lim)) : x <= lim);
  return (rule.min === undefined || ge(v, rule.min)) && (rule.max === undefined || le(v, rule.max));
}

/**
 * The invariant, on the device's image after a write of `count` at `address`: every
 * address the write touched that lies in a rule with limits belongs to a configured
 * point, and every configured point that the write touched and that reaches into a
 * limited rule decodes (its own codec, scale, offset) to a value within that rule.
 * Returns what is wrong, or undefined.
 */
export function violation(device: DeviceConfig, rules: readonly WriteRule[], table: 'coil' | 'holding', address: number, count: number, image: readonly (number | boolean)[]): string | undefined {
  const limited = rules.filter((r) => r.table === table && (r.min !== undefined || r.max !== undefined));
  const last = address + count - 1;
  const points = device.points.filter((p) => p.table === table);
  for (let a = address; a <= last; a++) {
    const rule = limited.find((r) => r.from <= a && a <= r.to);
    if (rule !== undefined && !points.some((p) => p.address <= a && a < p.address + registerCount(p))) return `${table} ${a} is limited, written, and no point describes it`;
  }
  for (const p of points) {
    const end = p.address + registerCount(p) - 1;
    if (end < address || p.address > last) continue;
    for (const rule of limited) {
      if (rule.to < p.address || rule.from > end) continue;
      let value: unknown;
      try {
        const slice = image.slice(p.address, end + 1);
        value = applyScale(p, table === 'coil' ? decodeBits(p, slice as boolean[]) : decodeRegisters(p, slice as number[]));
      } catch (err) {
        return `point ${p.name} does not decode after the write: ${(err as Error).message}`;
      }
      if (!within(value, rule)) return `point ${p.name} holds ${JSON.stringify(value)}, outside [${rule.min}, ${rule.max}] of ${table} ${rule.from}-${rule.to}`;
    }
  }
  return undefined;
}
