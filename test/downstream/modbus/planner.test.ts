import t from 'tap';
import type { DeviceConfig, PointConfig } from '../../../src/config/types.js';
import { decodeBits, decodeRegistersAt, encodeRegisters } from '../../../src/downstream/modbus/codec.js';
import { formatPlan, maxPerRequest, planDevice, type ReadRequest } from '../../../src/downstream/modbus/planner.js';

function pt(over: Partial<PointConfig> & Pick<PointConfig, 'name' | 'address'>): PointConfig {
  return {
    table: 'holding', type: 'uint16',
    byteOrder: 'big', wordOrder: 'big', scale: 1, offset: 0, deadband: 0, reportOnChange: false,
    ...over,
  };
}

function dev(points: readonly PointConfig[], over: Partial<DeviceConfig> = {}): DeviceConfig {
  return {
    name: 'boiler', unitId: 1, pollIntervalMs: 1000, timeoutMs: 1000, retries: 1,
    backoff: { initialMs: 1000, maxMs: 60000 },
    maxRegistersPerRequest: 125, maxBitsPerRequest: 2000, maxGap: 16,
    byteOrder: 'big', wordOrder: 'big',
    points, ...over,
  };
}

/** Compact view of a plan: [table, address, count, point names]. */
function shape(requests: readonly ReadRequest[]): Array<[string, number, number, string[]]> {
  return requests.map((r) => [r.table, r.address, r.count, r.points.map((p) => p.name)]);
}

const DECODE = { name: 'GuardianError', code: 'GUARDIAN_E_DECODE' };

t.test('maxPerRequest by table', async (t) => {
  const d = dev([], { maxRegistersPerRequest: 100, maxBitsPerRequest: 800 });
  t.equal(maxPerRequest(d, 'holding'), 100);
  t.equal(maxPerRequest(d, 'input'), 100);
  t.equal(maxPerRequest(d, 'coil'), 800);
  t.equal(maxPerRequest(d, 'discrete'), 800);
});

t.test('single point', async (t) => {
  t.same(shape(planDevice(dev([pt({ name: 'a', address: 7 })]))), [['holding', 7, 1, ['a']]]);
  t.same(shape(planDevice(dev([pt({ name: 'f', address: 7, type: 'float64' })]))), [['holding', 7, 4, ['f']]]);
  t.same(shape(planDevice(dev([pt({ name: 's', address: 7, type: 'string', length: 10 })]))), [['holding', 7, 10, ['s']]]);
  t.same(shape(planDevice(dev([]))), [], 'no points, no requests');
});

t.test('adjacent points merge, sorted by address', async (t) => {
  const plan = planDevice(dev([
    pt({ name: 'c', address: 103, type: 'float32' }),
    pt({ name: 'a', address: 100 }),
    pt({ name: 'b', address: 101, type: 'int32' }),
  ]));
  t.same(shape(plan), [['holding', 100, 5, ['a', 'b', 'c']]]);
});

t.test('gap just under, at and over maxGap', async (t) => {
  const at = (gap: number): ReturnType<typeof shape> => shape(planDevice(dev([
    pt({ name: 'a', address: 0, type: 'int32' }), // 0..1
    pt({ name: 'b', address: 2 + gap }),
  ], { maxGap: 4 })));
  t.same(at(3), [['holding', 0, 6, ['a', 'b']]], 'gap 3 < 4 merges');
  t.same(at(4), [['holding', 0, 7, ['a', 'b']]], 'gap 4 = maxGap merges');
  t.same(at(5), [['holding', 0, 2, ['a']], ['holding', 7, 1, ['b']]], 'gap 5 > 4 splits');
});

t.test('maxGap 0 merges only adjacent points', async (t) => {
  const plan = planDevice(dev([
    pt({ name: 'a', address: 0 }),
    pt({ name: 'b', address: 1 }),
    pt({ name: 'c', address: 3 }),
    pt({ name: 'd', address: 4, type: 'float32' }),
    pt({ name: 'e', address: 6 }),
  ], { maxGap: 0 }));
  t.same(shape(plan), [['holding', 0, 2, ['a', 'b']], ['holding', 3, 4, ['c', 'd', 'e']]]);
});

t.test('125-register limit: 125 merges, 126 splits', async (t) => {
  const first = pt({ name: 'a', address: 0 });
  t.same(shape(planDevice(dev([first, pt({ name: 'z', address: 124 })], { maxGap: 2000 }))),
    [['holding', 0, 125, ['a', 'z']]]);
  t.same(shape(planDevice(dev([first, pt({ name: 'z', address: 125 })], { maxGap: 2000 }))),
    [['holding', 0, 1, ['a']], ['holding', 125, 1, ['z']]]);
  const contiguous = Array.from({ length: 126 }, (_, i) => pt({ name: `r${i}`, address: 1000 + i }));
  const plan = planDevice(dev(contiguous));
  t.same(plan.map((r) => [r.address, r.count, r.points.length]), [[1000, 125, 125], [1125, 1, 1]]);
});

t.test('multi-register point at the request boundary', async (t) => {
  const base = [pt({ name: 'a', address: 0 })];
  t.same(shape(planDevice(dev([...base, pt({ name: 'f', address: 123, type: 'float32' })], { maxGap: 200 }))),
    [['holding', 0, 125, ['a', 'f']]], 'ends exactly at 125');
  t.same(shape(planDevice(dev([...base, pt({ name: 'f', address: 124, type: 'float32' })], { maxGap: 200 }))),
    [['holding', 0, 1, ['a']], ['holding', 124, 2, ['f']]], 'would end at 126: not split across requests');
  t.same(shape(planDevice(dev([...base, pt({ name: 'd', address: 122, type: 'float64' })], { maxGap: 200 }))),
    [['holding', 0, 1, ['a']], ['holding', 122, 4, ['d']]]);
});

t.test('lower maxRegistersPerRequest', async (t) => {
  const points = Array.from({ length: 10 }, (_, i) => pt({ name: `p${i}`, address: i }));
  t.same(planDevice(dev(points, { maxRegistersPerRequest: 4 })).map((r) => [r.address, r.count]),
    [[0, 4], [4, 4], [8, 2]]);
  t.same(planDevice(dev(points, { maxRegistersPerRequest: 1 })).length, 10);
});

t.test('2000-bit limit for coils and discrete inputs', async (t) => {
  const coil = (name: string, address: number): PointConfig => pt({ name, address, table: 'coil', type: 'bool' });
  t.same(shape(planDevice(dev([coil('a', 0), coil('z', 1999)], { maxGap: 2000 }))),
    [['coil', 0, 2000, ['a', 'z']]]);
  t.same(shape(planDevice(dev([coil('a', 0), coil('z', 2000)], { maxGap: 2000 }))),
    [['coil', 0, 1, ['a']], ['coil', 2000, 1, ['z']]]);
  const many = Array.from({ length: 2001 }, (_, i) => pt({ name: `d${i}`, address: i, table: 'discrete', type: 'bool' }));
  t.same(planDevice(dev(many)).map((r) => [r.table, r.address, r.count]), [['discrete', 0, 2000], ['discrete', 2000, 1]]);
  t.same(shape(planDevice(dev([coil('a', 0), coil('b', 200)], { maxRegistersPerRequest: 10, maxGap: 2000 }))),
    [['coil', 0, 201, ['a', 'b']]], 'bits use maxBitsPerRequest, not maxRegistersPerRequest');
  t.same(shape(planDevice(dev([coil('a', 0), coil('b', 8)], { maxBitsPerRequest: 8, maxGap: 2000 }))),
    [['coil', 0, 1, ['a']], ['coil', 8, 1, ['b']]]);
});

t.test('overlapping points share a request', async (t) => {
  const plan = planDevice(dev([
    pt({ name: 'status', address: 10 }),
    pt({ name: 'alarm', address: 10, type: 'bit', bit: 3 }),
    pt({ name: 'run', address: 10, type: 'bit', bit: 0 }),
  ]));
  t.same(shape(plan), [['holding', 10, 1, ['status', 'alarm', 'run']]], 'same register, config order kept');
  const floatOver = planDevice(dev([
    pt({ name: 'hi', address: 20, type: 'int16' }),
    pt({ name: 'lo', address: 21, type: 'int16' }),
    pt({ name: 'f', address: 20, type: 'float32' }),
  ], { maxGap: 0 }));
  t.same(shape(floatOver), [['holding', 20, 2, ['hi', 'f', 'lo']]]);
  const inside = planDevice(dev([
    pt({ name: 's', address: 0, type: 'string', length: 10 }),
    pt({ name: 'x', address: 3 }),
    pt({ name: 'y', address: 12 }),
  ], { maxGap: 0 }));
  t.same(shape(inside), [['holding', 0, 10, ['s', 'x']], ['holding', 12, 1, ['y']]], 'point inside a string');
});

t.test('overlap that would exceed the limit splits', async (t) => {
  const plan = planDevice(dev([
    pt({ name: 'a', address: 0 }),
    pt({ name: 'f', address: 1, type: 'float64' }),
    pt({ name: 'b', address: 2 }),
  ], { maxRegistersPerRequest: 4 }));
  t.same(shape(plan), [['holding', 0, 1, ['a']], ['holding', 1, 4, ['f', 'b']]]);
});

t.test('different tables never merge; order coil, discrete, input, holding', async (t) => {
  const plan = planDevice(dev([
    pt({ name: 'h1', address: 0 }),
    pt({ name: 'i1', address: 1, table: 'input' }),
    pt({ name: 'd1', address: 2, table: 'discrete', type: 'bool' }),
    pt({ name: 'c1', address: 3, table: 'coil', type: 'bool' }),
    pt({ name: 'h2', address: 500 }),
    pt({ name: 'c0', address: 0, table: 'coil', type: 'bool' }),
    pt({ name: 'i0', address: 0, table: 'input' }),
  ]));
  t.same(shape(plan), [
    ['coil', 0, 4, ['c0', 'c1']],
    ['discrete', 2, 1, ['d1']],
    ['input', 0, 2, ['i0', 'i1']],
    ['holding', 0, 1, ['h1']],
    ['holding', 500, 1, ['h2']],
  ]);
});

t.test('deterministic regardless of point order in the config', async (t) => {
  const points = [
    pt({ name: 'a', address: 5 }), pt({ name: 'b', address: 40, type: 'float32' }),
    pt({ name: 'c', address: 1, table: 'input' }), pt({ name: 'd', address: 9, table: 'coil', type: 'bool' }),
    pt({ name: 'e', address: 6, type: 'int64' }), pt({ name: 'f', address: 100 }),
  ];
  const expected = shape(planDevice(dev(points)));
  t.same(shape(planDevice(dev([...points].reverse()))), expected);
  t.same(shape(planDevice(dev(points))), expected, 'same input, same output');
});

t.test('guards', async (t) => {
  t.throws(() => planDevice(dev([pt({ name: 's', address: 0, type: 'string', length: 100 })], { maxRegistersPerRequest: 50 })), DECODE,
    'point larger than one request');
  t.throws(() => planDevice(dev([pt({ name: 'f', address: 65535, type: 'float32' })])), DECODE, 'past address 65535');
  t.same(shape(planDevice(dev([pt({ name: 'f', address: 65534, type: 'float32' })]))), [['holding', 65534, 2, ['f']]]);
  t.throws(() => planDevice(dev([pt({ name: 's', address: 0, type: 'string' })])), DECODE, 'string without length');
});

t.test("a request's points decode from its response at their offsets (as DevicePoller.decode does)", async (t) => {
  const a = pt({ name: 'a', address: 100 });
  const f = pt({ name: 'f', address: 103, type: 'float32' });
  const flag = pt({ name: 'flag', address: 100, type: 'bit', bit: 1 });
  const [req] = planDevice(dev([a, f, flag]));
  if (req === undefined) throw new Error('no request');
  t.same([req.address, req.count], [100, 5]);
  const at = (p: PointConfig): number => p.address - req.address;
  const data = [0x0002, 0xdead, 0xbeef, ...encodeRegisters(pt({ name: 'x', address: 0, type: 'float32' }), 1.5)];
  t.equal(decodeRegistersAt(a, data, at(a)), 2);
  t.equal(decodeRegistersAt(f, data, at(f)), 1.5);
  t.equal(decodeRegistersAt(flag, data, at(flag)), true);
  t.throws(() => decodeRegistersAt(f, data.slice(0, 4), at(f)), DECODE, 'data too short');
  t.throws(() => decodeRegistersAt(pt({ name: 'out', address: 99 }), data, 99 - req.address), DECODE, 'before the request');
  t.throws(() => decodeRegistersAt(pt({ name: 'out', address: 104, type: 'float32' }), data, 104 - req.address), DECODE, 'past the request');

  const c0 = pt({ name: 'c0', address: 0, table: 'coil', type: 'bool' });
  const c3 = pt({ name: 'c3', address: 3, table: 'coil', type: 'bool' });
  const [creq] = planDevice(dev([c0, c3]));
  if (creq === undefined) throw new Error('no request');
  const bits = [false, true, false, true, false, false, false, false]; // modbus-serial pads to whole bytes
  const bit = (p: PointConfig): boolean => decodeBits(p, bits.slice(p.address - creq.address, p.address - creq.address + 1));
  t.equal(bit(c0), false);
  t.equal(bit(c3), true);
  t.throws(() => decodeBits(c3, bits.slice(8, 9)), DECODE, 'a bit past the response');
});

t.test('formatPlan', async (t) => {
  const points = [
    pt({ name: 'temp', address: 100, type: 'float32' }),
    pt({ name: 'pressure', address: 102, type: 'float32' }),
    pt({ name: 'pump', address: 0, table: 'coil', type: 'bool' }),
    pt({ name: 'fan', address: 15, table: 'coil', type: 'bool' }),
    pt({ name: 'model', address: 300, table: 'input', type: 'string', length: 1 }),
  ];
  t.equal(formatPlan('boiler', 1, planDevice(dev(points))), [
    'boiler (unit 1): 3 requests for 5 points',
    '  coil 0..15 (16 bits): pump, fan',
    '  input 300..300 (1 register): model',
    '  holding 100..103 (4 registers): temp, pressure',
  ].join('\n'));
  t.equal(formatPlan('x', 7, planDevice(dev([pt({ name: 'c', address: 4, table: 'discrete', type: 'bool' })]))), [
    'x (unit 7): 1 request for 1 point',
    '  discrete 4..4 (1 bit): c',
  ].join('\n'));
  t.equal(formatPlan('empty', 0, []), 'empty (unit 0): 0 requests for 0 points');
});
