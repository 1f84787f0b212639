// The device write policy: denied by default; function, range, value and rate, each refused with its reason.
// Values are judged on what the write leaves in the device (`written`), never on what a command said.
import { join } from 'node:path';
import t from 'tap';
import { loadManifest } from '../../src/firewall/manifest.js';
import type { DeviceWritePolicy } from '../../src/firewall/manifest.js';
import { WritePolicy, type WriteRequest, type WrittenValue } from '../../src/firewall/write-policy.js';

const EXAMPLE = join(import.meta.dirname, '..', '..', 'config', 'app_manifest.example.json');

/** A write of `count` registers at `address` whose one point `sp` spans them and decodes to `value`. */
const req = (over: Partial<WriteRequest> & { value?: WrittenValue['value'] }): WriteRequest => {
  const { value = 10, ...rest } = over;
  const address = rest.address ?? 100;
  const count = rest.count ?? 1;
  const table = rest.table ?? 'holding';
  return {
    device: 'press', table, address, count, kind: 'point', point: 'sp', requester: 'test',
    data: table === 'coil' ? Array<boolean>(count).fill(true) : Array<number>(count).fill(0),
    written: [{ point: 'sp', address, count, value }],
    ...rest,
  };
};

void t.test('the example manifest: what the press may be written, and nothing else', async (t) => {
  const policy = WritePolicy.fromManifest(loadManifest(EXAMPLE));
  t.match(policy.decide(req({})), { allowed: true, verify: true });
  t.match(policy.decide(req({ address: 108, count: 2, value: 250 })), { allowed: true }, 'a 32-bit value in two registers at the end of the range');
  t.match(policy.decide(req({ table: 'coil', address: 3, value: true })), { allowed: true });
  t.match(policy.decide(req({ value: '250' })), { allowed: true }, 'a 64-bit decimal string within the limits');
  const denied: [Parameters<typeof req>[0], string, RegExp][] = [
    [{ device: 'oven' }, 'no-policy', /device 'oven' may not be written: the manifest has no write policy for it/],
    [{ address: 99 }, 'range', /holding 99 is outside the allowed 100-109/],
    [{ address: 109, count: 2 }, 'range', /holding 109-110 is outside the allowed 100-109 \(holding 110 is in no rule\)/],
    [{ table: 'coil', address: 4, value: true }, 'range', /coil 4 is outside the allowed 3/],
    [{ value: 251 }, 'value', /value 251 is above the maximum 250/],
    [{ value: -1 }, 'value', /value -1 is below the minimum 0/],
    [{ value: Number.NaN }, 'value', /value NaN is not a finite number/],
    [{ value: Number.POSITIVE_INFINITY }, 'value', /value Infinity is not a finite number/],
    [{ value: '18446744073709551615' }, 'value', /value 18446744073709551615 is above the maximum 250/],
    [{ value: '-9223372036854775808' }, 'value', /below the minimum 0/],
    [{ value: 'hello' }, 'value', /point sp \(holding 100\) has value limits \(holding 100-109\) and holds text/],
    [{ address: 65535, count: 2 }, 'malformed', /not a valid Modbus range/],
    [{ count: 0 }, 'malformed', /not a valid Modbus range/],
    [{ count: 2, data: [0] }, 'malformed', /\(1 values\) is not a valid Modbus range/],
    [{ count: 2, written: [{ point: 'sp', address: 100, count: 1, value: 1 }] }, 'malformed', /does not say what holding 101 will hold/],
  ];
  for (const [over, reason, message] of denied) t.match(policy.decide(req(over)), { allowed: false, reason, message }, `${reason}: ${JSON.stringify(over)}`);
});

void t.test('limits apply to what is written, whatever the command looked like', async (t) => {
  const policy = WritePolicy.fromManifest(loadManifest(EXAMPLE));
  // 0x0001 0x0000: each half is within 0..250, but the point they form is not
  t.match(policy.decide(req({ kind: 'raw', address: 100, count: 2, data: [1, 0], written: [{ point: 'sp', address: 100, count: 2, value: 65536 }] })),
    { allowed: false, reason: 'value', message: /value 65536 is above the maximum 250/ }, 'a raw write is judged by the point it forms');
  t.match(policy.decide(req({ kind: 'raw', address: 100, count: 2, data: [0, 7], written: [{ point: 'sp', address: 100, count: 2, value: 7 }] })),
    { allowed: true }, 'a raw write whose point is within the limits is allowed');
  t.match(policy.decide(req({ kind: 'raw', address: 101, count: 1, written: [{ point: 'sp', address: 100, count: 2, unknown: 'is only partly written (holding 101-101 of 100-101)' }] })),
    { allowed: false, reason: 'value', message: /point sp \(holding 100-101\) has value limits \(holding 100-109\) and is only partly written/ }, 'half a limited point: its value depends on the other half');
  t.match(policy.decide(req({ kind: 'raw', address: 105, written: [{ address: 105, count: 1, value: 3 }] })),
    { allowed: false, reason: 'value', message: /holding 105 has value limits \(holding 100-109\) and no configured point says how the device reads it/ }, 'a limited address no point describes');
  t.match(policy.decide(req({ kind: 'point', address: 100, count: 1, written: [{ point: 'sp', address: 100, count: 1, value: 5 }, { point: 'wide', address: 99, count: 2, value: 1000 }] })),
    { allowed: false, reason: 'value', message: /value 1000 is above the maximum 250/ }, 'a second point over the same register, reaching into the limited range, is judged too');
  t.match(policy.decide(req({ kind: 'raw', table: 'coil', address: 3, value: true })), { allowed: true }, 'coils have no limits: raw coil writes are fine');
  const open = new Map<string, DeviceWritePolicy>([['press', { allow: [{ table: 'holding', from: 0, to: 9, verify: false }] }]]);
  t.same(new WritePolicy(open).decide(req({ kind: 'raw', address: 0, count: 3, written: [{ address: 0, count: 3, value: 1 }] })), { allowed: true, verify: false }, 'a rule without limits takes any registers; Verify false is passed on');
});

void t.test('a write across adjacent rules: all of them are covered and each judges its part', async (t) => {
  const policies = new Map<string, DeviceWritePolicy>([['press', { allow: [
    { table: 'holding', from: 0, to: 9, verify: true },
    { table: 'holding', from: 10, to: 10, min: 0, max: 5, verify: true },
    { table: 'holding', from: 11, to: 12, verify: false },
  ] }]]);
  const policy = new WritePolicy(policies);
  const across = (value: number): WriteRequest => req({
    kind: 'raw', address: 8, count: 4, written: [{ address: 8, count: 1, value: 1 }, { address: 9, count: 1, value: 1 }, { point: 'lim', address: 10, count: 1, value }, { address: 11, count: 1, value: 9 }],
  });
  t.same(policy.decide(across(5)), { allowed: true, verify: false }, 'covered by three rules; one of them says Verify false');
  t.match(policy.decide(across(6)), { allowed: false, reason: 'value', message: /value 6 is above the maximum 5/ }, 'the limited rule in the middle still judges its register');
  t.same(policy.decide(req({ address: 0, count: 10, written: [{ address: 0, count: 10, value: 1 }] })), { allowed: true, verify: true });
  t.match(policy.decide(req({ address: 12, count: 2 })), { allowed: false, reason: 'range', message: /holding 13 is in no rule/ });
});

void t.test('fractional limits against 64-bit decimal strings are exact', async (t) => {
  const policies = new Map<string, DeviceWritePolicy>([['press', { allow: [{ table: 'holding', from: 0, to: 3, min: -2.5, max: 2.5, verify: true }] }]]);
  const policy = new WritePolicy(policies);
  const at = (value: string): boolean => policy.decide(req({ address: 0, count: 4, value })).allowed;
  t.same(['-3', '-2', '2', '3', '9007199254740993'].map(at), [false, true, true, false, false]);
});

void t.test('a device allowed only coils may not have its registers written', async (t) => {
  const policies = new Map<string, DeviceWritePolicy>([['valve', { allow: [{ table: 'coil', from: 0, to: 7, verify: true }] }]]);
  t.match(new WritePolicy(policies).decide(req({ device: 'valve', address: 0 })), { allowed: false, reason: 'table', message: /no holding writes are allowed/ });
});

void t.test('the rate limit: a sliding minute, denied writes do not count', async (t) => {
  let now = 0;
  const policies = new Map<string, DeviceWritePolicy>([['press', { allow: [{ table: 'holding', from: 0, to: 9, max: 100, verify: true }], maxWritesPerMinute: 3 }]]);
  const policy = new WritePolicy(policies, () => now);
  const write = (value = 1): boolean => policy.decide(req({ address: 0, value })).allowed;
  t.same([write(), write(999)], [true, false], 'a denied write uses no slot');
  now = 10_000;
  t.ok(write());
  now = 20_000;
  t.ok(write());
  t.match(policy.decide(req({ address: 0 })), { allowed: false, reason: 'rate', message: /more than 3 writes a minute/ });
  now = 59_999;
  t.notOk(write(), 'still within the minute of the first write');
  now = 60_000;
  t.ok(write(), 'the first write left the window');
  t.notOk(write());
});
