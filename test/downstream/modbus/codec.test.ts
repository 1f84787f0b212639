import t from 'tap';
import type { ByteOrder, PointConfig } from '../../../src/config/types.js';
import { hasCode } from '../../../src/core/errors.js';
import {
  applyScale, decodeBits, decodeRegisters, decodeRegistersAt, encodeRegisters, isBitTable, registerCount,
} from '../../../src/downstream/modbus/codec.js';

function pt(over: Partial<PointConfig> & Pick<PointConfig, 'type'>): PointConfig {
  return {
    name: 'p', table: 'holding', address: 0,
    byteOrder: 'big', wordOrder: 'big', scale: 1, offset: 0, deadband: 0, reportOnChange: false,
    ...over,
  };
}

const isDecode = (err: unknown): boolean => hasCode(err, 'GUARDIAN_E_DECODE');
const DECODE = { name: 'GuardianError', code: 'GUARDIAN_E_DECODE' };
const ORDERS: readonly ByteOrder[] = ['big', 'little'];
/** The four combinations: ABCD, CDAB, BADC, DCBA. */
const COMBOS = ORDERS.flatMap((byteOrder) => ORDERS.map((wordOrder) => ({ byteOrder, wordOrder })));

t.test('isBitTable', async (t) => {
  t.equal(isBitTable('coil'), true);
  t.equal(isBitTable('discrete'), true);
  t.equal(isBitTable('input'), false);
  t.equal(isBitTable('holding'), false);
});

t.test('registerCount per type and table', async (t) => {
  const expected = {
    bool: 1, bit: 1, int16: 1, uint16: 1, int32: 2, uint32: 2, float32: 2, int64: 4, uint64: 4, float64: 4,
  } as const;
  for (const [type, n] of Object.entries(expected)) {
    t.equal(registerCount(pt({ type: type as keyof typeof expected })), n, type);
    t.equal(registerCount(pt({ type: type as keyof typeof expected, table: 'input' })), n, `${type} input`);
  }
  t.equal(registerCount(pt({ type: 'string', length: 5 })), 5);
  t.equal(registerCount(pt({ type: 'float64', length: 9 })), 4, 'length ignored for non-strings');
  t.equal(registerCount(pt({ type: 'bool', table: 'coil' })), 1);
  t.equal(registerCount(pt({ type: 'bool', table: 'discrete' })), 1);
  t.equal(registerCount(pt({ type: 'float64', table: 'coil' })), 1, 'bit tables always span one bit');
  t.throws(() => registerCount(pt({ type: 'string' })), DECODE, 'string without length');
  t.throws(() => registerCount(pt({ type: 'string', length: 0 })), DECODE, 'string with length 0');
});

t.test('float32 1.5 known vectors in all four orders', async (t) => {
  const vectors = {
    'big/big': [0x3fc0, 0x0000], // ABCD
    'big/little': [0x0000, 0x3fc0], // CDAB
    'little/big': [0xc03f, 0x0000], // BADC
    'little/little': [0x0000, 0xc03f], // DCBA
  } as Record<string, number[]>;
  for (const { byteOrder, wordOrder } of COMBOS) {
    const p = pt({ type: 'float32', byteOrder, wordOrder });
    const regs = vectors[`${byteOrder}/${wordOrder}`] ?? [];
    t.same(encodeRegisters(p, 1.5), regs, `encode ${byteOrder}/${wordOrder}`);
    t.equal(decodeRegisters(p, regs), 1.5, `decode ${byteOrder}/${wordOrder}`);
  }
});

t.test('int32 / uint32 known vectors', async (t) => {
  t.same(encodeRegisters(pt({ type: 'int32' }), -2), [0xffff, 0xfffe]);
  t.equal(decodeRegisters(pt({ type: 'int32' }), [0xffff, 0xfffe]), -2);
  t.equal(decodeRegisters(pt({ type: 'int32', wordOrder: 'little' }), [0xfffe, 0xffff]), -2);
  t.equal(decodeRegisters(pt({ type: 'int32', byteOrder: 'little' }), [0xffff, 0xfeff]), -2);
  t.equal(decodeRegisters(pt({ type: 'uint32' }), [0xffff, 0xfffe]), 0xfffffffe);
  t.equal(decodeRegisters(pt({ type: 'uint32' }), [0x1234, 0x5678]), 0x12345678);
  t.equal(decodeRegisters(pt({ type: 'uint32', wordOrder: 'little' }), [0x5678, 0x1234]), 0x12345678);
  t.equal(decodeRegisters(pt({ type: 'uint32', byteOrder: 'little' }), [0x3412, 0x7856]), 0x12345678);
  t.equal(decodeRegisters(pt({ type: 'uint32', byteOrder: 'little', wordOrder: 'little' }), [0x7856, 0x3412]), 0x12345678);
  t.equal(decodeRegisters(pt({ type: 'int32' }), [0x8000, 0x0000]), -(2 ** 31));
  t.equal(decodeRegisters(pt({ type: 'int32' }), [0x7fff, 0xffff]), 2 ** 31 - 1);
});

t.test('16-bit types and byte order', async (t) => {
  t.equal(decodeRegisters(pt({ type: 'int16' }), [0xffff]), -1);
  t.equal(decodeRegisters(pt({ type: 'int16' }), [0x8000]), -32768);
  t.equal(decodeRegisters(pt({ type: 'int16' }), [0x7fff]), 32767);
  t.equal(decodeRegisters(pt({ type: 'uint16' }), [0xffff]), 65535);
  t.equal(decodeRegisters(pt({ type: 'uint16' }), [0x1234]), 0x1234);
  t.equal(decodeRegisters(pt({ type: 'uint16', byteOrder: 'little' }), [0x1234]), 0x3412);
  t.equal(decodeRegisters(pt({ type: 'uint16', wordOrder: 'little' }), [0x1234]), 0x1234, 'word order irrelevant');
  t.equal(decodeRegisters(pt({ type: 'int16', byteOrder: 'little' }), [0x00ff]), -256);
  t.same(encodeRegisters(pt({ type: 'int16' }), -1), [0xffff]);
  t.same(encodeRegisters(pt({ type: 'uint16', byteOrder: 'little' }), 0x1234), [0x3412]);
});

t.test('64-bit integers', async (t) => {
  const u64 = pt({ type: 'uint64' });
  const i64 = pt({ type: 'int64' });
  t.same(encodeRegisters(u64, 2n ** 53n + 1n), [0x0020, 0x0000, 0x0000, 0x0001]);
  t.equal(decodeRegisters(u64, [0x0020, 0x0000, 0x0000, 0x0001]), '9007199254740993');
  t.equal(decodeRegisters(u64, [0x0020, 0x0000, 0x0000, 0x0000]), '9007199254740992', '2^53 is not safe');
  t.equal(decodeRegisters(u64, [0x001f, 0xffff, 0xffff, 0xffff]), Number.MAX_SAFE_INTEGER);
  t.equal(decodeRegisters(u64, [0xffff, 0xffff, 0xffff, 0xffff]), '18446744073709551615');
  t.equal(decodeRegisters(u64, [0, 0, 0, 42]), 42);
  t.same(encodeRegisters(i64, -1), [0xffff, 0xffff, 0xffff, 0xffff]);
  t.equal(decodeRegisters(i64, [0xffff, 0xffff, 0xffff, 0xffff]), -1);
  t.equal(decodeRegisters(i64, [0x8000, 0, 0, 0]), '-9223372036854775808');
  t.equal(decodeRegisters(i64, [0xffe0, 0x0000, 0x0000, 0x0000]), '-9007199254740992');
  t.equal(decodeRegisters(i64, [0xffe0, 0x0000, 0x0000, 0x0001]), Number.MIN_SAFE_INTEGER);
  // 0x0102030405060708 in the four orders
  const v = 0x0102030405060708n;
  t.same(encodeRegisters(u64, v), [0x0102, 0x0304, 0x0506, 0x0708]);
  t.same(encodeRegisters(pt({ type: 'uint64', wordOrder: 'little' }), v), [0x0708, 0x0506, 0x0304, 0x0102]);
  t.same(encodeRegisters(pt({ type: 'uint64', byteOrder: 'little' }), v), [0x0201, 0x0403, 0x0605, 0x0807]);
  t.same(encodeRegisters(pt({ type: 'uint64', byteOrder: 'little', wordOrder: 'little' }), v), [0x0807, 0x0605, 0x0403, 0x0201]);
  t.equal(decodeRegisters(pt({ type: 'uint64', wordOrder: 'little' }), [0x0708, 0x0506, 0x0304, 0x0102]), v.toString());
  t.same(encodeRegisters(u64, '9007199254740993'), [0x0020, 0, 0, 1], 'decimal string accepted');
});

t.test('float64 known vector and orders', async (t) => {
  // 1.5 = 0x3FF8000000000000
  t.same(encodeRegisters(pt({ type: 'float64' }), 1.5), [0x3ff8, 0, 0, 0]);
  t.same(encodeRegisters(pt({ type: 'float64', wordOrder: 'little' }), 1.5), [0, 0, 0, 0x3ff8]);
  t.same(encodeRegisters(pt({ type: 'float64', byteOrder: 'little' }), 1.5), [0xf83f, 0, 0, 0]);
  t.equal(decodeRegisters(pt({ type: 'float64', byteOrder: 'little', wordOrder: 'little' }), [0, 0, 0, 0xf83f]), 1.5);
  t.equal(decodeRegisters(pt({ type: 'float64' }), [0x4009, 0x21fb, 0x5444, 0x2d18]), Math.PI);
});

t.test('float32 decodes to its shortest decimal', async (t) => {
  const p = pt({ type: 'float32' });
  t.same(encodeRegisters(p, 21.7), [0x41ad, 0x999a]);
  t.equal(decodeRegisters(p, [0x41ad, 0x999a]), 21.7);
  t.equal(decodeRegisters(p, [0x3dcc, 0xcccd]), 0.1);
  t.equal(decodeRegisters(p, [0x7f7f, 0xffff]), 3.4028235e38, 'float32 max');
  t.equal(decodeRegisters(p, [0x0000, 0x0001]), 1e-45, 'smallest denormal');
  t.same(encodeRegisters(p, 3.4028235e38), [0x7f7f, 0xffff]);
  t.same(encodeRegisters(p, 1e-45), [0x0000, 0x0001]);
});

t.test('non-finite floats are decode errors', async (t) => {
  t.throws(() => decodeRegisters(pt({ type: 'float32' }), [0x7fc0, 0x0000]), DECODE, 'float32 NaN');
  t.throws(() => decodeRegisters(pt({ type: 'float32' }), [0x7f80, 0x0000]), DECODE, 'float32 +Inf');
  t.throws(() => decodeRegisters(pt({ type: 'float32' }), [0xff80, 0x0000]), DECODE, 'float32 -Inf');
  t.throws(() => decodeRegisters(pt({ type: 'float64' }), [0x7ff8, 0, 0, 0]), DECODE, 'float64 NaN');
  t.throws(() => decodeRegisters(pt({ type: 'float64' }), [0xfff0, 0, 0, 0]), DECODE, 'float64 -Inf');
  t.throws(() => encodeRegisters(pt({ type: 'float32' }), Number.NaN), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'float64' }), Infinity), DECODE);
});

t.test('strings', async (t) => {
  const s3 = pt({ type: 'string', length: 3 });
  t.same(encodeRegisters(s3, 'ABCDE'), [0x4142, 0x4344, 0x4500], 'odd length, NUL padded');
  t.equal(decodeRegisters(s3, [0x4142, 0x4344, 0x4500]), 'ABCDE');
  t.same(encodeRegisters(s3, 'AB'), [0x4142, 0, 0]);
  t.equal(decodeRegisters(s3, [0x4142, 0x0043, 0x4445]), 'AB', 'cut at first NUL');
  t.equal(decodeRegisters(s3, [0x4142, 0x2020, 0x2020]), 'AB', 'trailing spaces trimmed');
  t.equal(decodeRegisters(s3, [0x2041, 0x2042, 0x2000]), ' A B', 'leading and inner spaces kept');
  t.equal(decodeRegisters(s3, [0x4142, 0x4320, 0x0000]), 'ABC', 'spaces before NUL trimmed');
  t.equal(decodeRegisters(s3, [0, 0, 0]), '');
  t.equal(decodeRegisters(s3, [0x4142, 0x4344, 0x4546]), 'ABCDEF', 'full length without NUL');
  const le = pt({ type: 'string', length: 3, byteOrder: 'little' });
  t.same(encodeRegisters(le, 'ABCDE'), [0x4241, 0x4443, 0x0045]);
  t.equal(decodeRegisters(le, [0x4241, 0x4443, 0x0045]), 'ABCDE');
  const wl = pt({ type: 'string', length: 3, wordOrder: 'little' });
  t.equal(decodeRegisters(wl, [0x4142, 0x4344, 0x4500]), 'ABCDE', 'word order ignored for strings');
  t.equal(decodeRegisters(s3, [0x41e9, 0xff00, 0]), 'A\u00e9\u00ff', 'latin1');
  t.equal(decodeRegisters(s3, [0x4101, 0x097f, 0x9f42]), 'A\ufffd\ufffd\ufffd\ufffdB', 'control characters replaced');
  t.throws(() => encodeRegisters(s3, 'ABCDEFG'), DECODE, 'too long');
  t.throws(() => encodeRegisters(s3, 'A\u20acB'), DECODE, 'not latin1');
  t.throws(() => encodeRegisters(s3, 'A\nB'), DECODE, 'control character');
  t.throws(() => encodeRegisters(s3, 'A\0B'), DECODE, 'NUL');
  t.throws(() => encodeRegisters(s3, 42), DECODE, 'not a string');
});

t.test('bool and bit on registers', async (t) => {
  t.equal(decodeRegisters(pt({ type: 'bool' }), [0]), false);
  t.equal(decodeRegisters(pt({ type: 'bool' }), [1]), true);
  t.equal(decodeRegisters(pt({ type: 'bool' }), [0x8000]), true);
  t.equal(decodeRegisters(pt({ type: 'bool', byteOrder: 'little' }), [0x0100]), true);
  t.same(encodeRegisters(pt({ type: 'bool' }), true), [1]);
  t.same(encodeRegisters(pt({ type: 'bool' }), false), [0]);
  for (let bit = 0; bit < 16; bit++) {
    t.equal(decodeRegisters(pt({ type: 'bit', bit }), [1 << bit]), true, `bit ${bit} set`);
    t.equal(decodeRegisters(pt({ type: 'bit', bit }), [0xffff ^ (1 << bit)]), false, `bit ${bit} clear`);
  }
  t.equal(decodeRegisters(pt({ type: 'bit', bit: 0 }), [0x0001]), true);
  t.equal(decodeRegisters(pt({ type: 'bit', bit: 0, byteOrder: 'little' }), [0x0001]), false, 'swap first');
  t.equal(decodeRegisters(pt({ type: 'bit', bit: 8, byteOrder: 'little' }), [0x0001]), true);
  t.same(encodeRegisters(pt({ type: 'bit', bit: 3 }), true), [0x0008]);
  t.same(encodeRegisters(pt({ type: 'bit', bit: 3, byteOrder: 'little' }), true), [0x0800]);
  t.same(encodeRegisters(pt({ type: 'bit', bit: 3 }), false), [0]);
  t.throws(() => decodeRegisters(pt({ type: 'bit' }), [1]), DECODE, 'bit number missing');
  t.throws(() => encodeRegisters(pt({ type: 'bool' }), 1), DECODE, 'bool needs a boolean');
});

t.test('round trip every type × byteOrder × wordOrder', async (t) => {
  const samples: ReadonlyArray<[PointConfig['type'], ReadonlyArray<number | bigint | string | boolean>]> = [
    ['bool', [true, false]],
    ['int16', [0, 1, -1, 32767, -32768, 0x1234]],
    ['uint16', [0, 1, 65535, 0x1234, 0x8000]],
    ['int32', [0, -2, 2 ** 31 - 1, -(2 ** 31), 0x12345678, -123456789]],
    ['uint32', [0, 2 ** 32 - 1, 0x12345678, 0x80000001]],
    ['int64', [0, -1, 42, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, '9223372036854775807', '-9223372036854775808', '-9007199254740993']],
    ['uint64', [0, 1, Number.MAX_SAFE_INTEGER, '9007199254740993', '18446744073709551615', '1311768467463790320']],
    ['float32', [0, 1.5, -1.5, 3.4028234663852886e38, 1.401298464324817e-45, Math.fround(21.7), -123.25]],
    ['float64', [0, 1.5, Math.PI, -Number.MAX_VALUE, Number.MIN_VALUE, 0.1 + 0.2, -1e-300]],
    ['string', ['', 'A', 'AB', 'ABC', 'Hello, W\u00f6rld!', ' lead']],
  ];
  for (const { byteOrder, wordOrder } of COMBOS) {
    for (const [type, values] of samples) {
      const p = pt({ type, byteOrder, wordOrder, ...(type === 'string' ? { length: 8 } : {}) });
      for (const v of values) {
        const regs = encodeRegisters(p, v);
        t.equal(regs.length, registerCount(p));
        t.ok(regs.every((r) => Number.isInteger(r) && r >= 0 && r <= 0xffff), 'uint16 registers');
        const back = decodeRegisters(p, regs);
        if (back === null) throw new Error('decode gave null');
        if (type === 'float32' && typeof v === 'number' && typeof back === 'number') {
          t.equal(Math.fround(back), Math.fround(v), `${type} ${v} ${byteOrder}/${wordOrder}`);
        } else {
          t.same(back, v, `${type} ${String(v)} ${byteOrder}/${wordOrder}`);
        }
        t.same(encodeRegisters(p, back), regs, 'encode(decode(regs)) === regs');
      }
    }
    for (let bit = 0; bit < 16; bit++) {
      const p = pt({ type: 'bit', bit, byteOrder, wordOrder });
      t.equal(decodeRegisters(p, encodeRegisters(p, true)), true);
      t.equal(decodeRegisters(p, encodeRegisters(p, false)), false);
    }
  }
});

t.test('encode range checks', async (t) => {
  t.throws(() => encodeRegisters(pt({ type: 'int16' }), 32768), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'int16' }), -32769), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'uint16' }), -1), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'uint16' }), 65536), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'uint32' }), 2 ** 32), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'int32' }), 2 ** 31), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'uint64' }), -1), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'uint64' }), 2n ** 64n), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'int64' }), 2n ** 63n), DECODE);
  t.throws(() => encodeRegisters(pt({ type: 'int16' }), 1.5), DECODE, 'fraction');
  t.throws(() => encodeRegisters(pt({ type: 'int16' }), '12a'), DECODE, 'not a decimal');
  t.throws(() => encodeRegisters(pt({ type: 'int16' }), true), DECODE, 'boolean');
  t.throws(() => encodeRegisters(pt({ type: 'float32' }), '1.5'), DECODE, 'string to float');
  t.throws(() => encodeRegisters(pt({ type: 'bool', table: 'coil' }), true), DECODE, 'bit table');
  t.same(encodeRegisters(pt({ type: 'int16' }), 5n), [5], 'bigint accepted');
});

t.test('decodeRegisters input checks', async (t) => {
  t.throws(() => decodeRegisters(pt({ type: 'float32' }), [0x3fc0]), DECODE, 'too few registers');
  t.throws(() => decodeRegisters(pt({ type: 'uint16' }), [1, 2]), DECODE, 'too many registers');
  t.throws(() => decodeRegisters(pt({ type: 'uint16' }), [65536]), DECODE, 'not uint16');
  t.throws(() => decodeRegisters(pt({ type: 'uint16' }), [-1]), DECODE, 'negative');
  t.throws(() => decodeRegisters(pt({ type: 'uint16' }), [1.5]), DECODE, 'fraction');
  t.throws(() => decodeRegisters(pt({ type: 'bool', table: 'coil' }), [1]), DECODE, 'bit table');
  try {
    decodeRegisters(pt({ type: 'float32', name: 'temp', address: 7 }), [0x7fc0, 0]);
    t.fail('should throw');
  } catch (err) {
    t.ok(isDecode(err));
    t.match(err, { context: { point: 'temp', address: 7, type: 'float32' } });
  }
});

t.test('decodeBits', async (t) => {
  const coil = pt({ type: 'bool', table: 'coil' });
  const discrete = pt({ type: 'bool', table: 'discrete' });
  t.equal(decodeBits(coil, [true]), true);
  t.equal(decodeBits(discrete, [false]), false);
  t.throws(() => decodeBits(coil, []), DECODE);
  t.throws(() => decodeBits(coil, [true, false]), DECODE);
  t.throws(() => decodeBits(pt({ type: 'bool' }), [true]), DECODE, 'register table');
});

t.test('applyScale', async (t) => {
  const s = (over: Partial<PointConfig>): PointConfig => pt({ type: 'int16', ...over });
  t.equal(applyScale(s({}), 215), 215, 'identity');
  t.equal(applyScale(s({}), 0.1 + 0.2), 0.1 + 0.2, 'identity keeps the raw value exactly');
  t.equal(applyScale(s({ scale: 0.1 }), 215), 21.5);
  t.equal(applyScale(s({ scale: 0.1 }), -215), -21.5);
  t.equal(applyScale(s({ scale: 0.01 }), 12345), 123.45);
  t.equal(applyScale(s({ scale: 0.1, offset: -40 }), 653), 25.3);
  t.equal(applyScale(s({ offset: 0.1 }), 0.2 * 1), 0.3, 'float raw: 12 significant digits');
  t.equal(applyScale(s({ scale: 2 }), 21), 42);
  t.equal(applyScale(s({ scale: 1e-7 }), 3), 3e-7);
  t.equal(applyScale(s({ scale: 0.1 }), 0), 0);
  t.ok(Object.is(applyScale(s({ scale: -1 }), 0), 0), 'no negative zero');
  t.equal(applyScale(s({ type: 'float64', scale: 0.1 }), 21.7), 2.17, 'float noise rounded');
  t.equal(applyScale(s({ type: 'float64', scale: 3 }), 1.1), 3.3, 'float noise rounded (3.3000000000000003)');
  t.equal(applyScale(s({ type: 'uint64', scale: 0.001 }), 123456789012345), 123456789012.345, 'large counters keep digits');
  t.equal(applyScale(s({ type: 'uint64', scale: 0.001 }), '9007199254740993'), 9007199254740.992, 'decimal string through Number');
  t.equal(applyScale(s({ type: 'uint64' }), '9007199254740993'), '9007199254740993', 'identity keeps the string');
  t.equal(applyScale(s({ type: 'int64', offset: 1 }), '-9007199254740993'), -9007199254740991);
  t.equal(applyScale(s({ type: 'string', scale: 2 }), '123'), '123', 'string points pass through');
  t.equal(applyScale(s({ type: 'bool', scale: 2 }), true), true);
  t.equal(applyScale(s({ scale: 2 }), null), null);
  t.throws(() => applyScale(s({ type: 'float64', scale: 10 }), Number.MAX_VALUE), DECODE, 'overflow');
});

t.test('decodeRegistersAt reads a point in place, the same as decodeRegisters on its slice', async (t) => {
  const samples: [PointConfig['type'], number | bigint | string | boolean][] = [
    ['int16', -2], ['uint16', 65000], ['int32', -123456], ['uint32', 0xdeadbeef], ['int64', -(2n ** 60n)],
    ['uint64', 2n ** 63n + 5n], ['float32', 1.5], ['float64', Math.PI], ['bool', true],
  ];
  for (const { byteOrder, wordOrder } of COMBOS) {
    for (const [type, value] of samples) {
      const point = pt({ type, byteOrder, wordOrder });
      const regs = encodeRegisters(point, value);
      const data = [0x1111, 0x2222, ...regs, 0x3333];
      t.same(decodeRegistersAt(point, data, 2), decodeRegisters(point, regs), `${type} ${byteOrder}/${wordOrder}`);
    }
  }
  const str = pt({ type: 'string', length: 3 });
  t.equal(decodeRegistersAt(str, [0, ...encodeRegisters(str, 'ABCDE'), 9], 1), 'ABCDE');
  t.equal(decodeRegistersAt(pt({ type: 'bit', bit: 15 }), [0, 0x8000], 1), true);
  t.throws(() => decodeRegistersAt(pt({ type: 'float32' }), [1, 2, 3], 2), DECODE, 'runs past the response');
  t.throws(() => decodeRegistersAt(pt({ type: 'int16' }), [1], -1), DECODE, 'negative offset');
});

t.test('float32: a finite number that rounds to Infinity on the wire is refused, never written as Infinity', async (t) => {
  const point = pt({ type: 'float32' });
  // float32's largest value plus half a unit in the last place: Math.fround gives Infinity (found by write-property, seed 617909129)
  for (const value of [3.4028235677973366e38, -3.4028235677973366e38, 1e39]) {
    let caught: unknown;
    try {
      encodeRegisters(point, value);
    } catch (err) {
      caught = err;
    }
    t.ok(hasCode(caught, 'GUARDIAN_E_DECODE'), `${value} is refused with its code`);
    t.ok(!Number.isFinite(Math.fround(value)), `${value} would be Infinity as float32`);
  }
  t.doesNotThrow(() => encodeRegisters(point, 3.4028234663852886e38), 'the largest float32 itself is written');
});
