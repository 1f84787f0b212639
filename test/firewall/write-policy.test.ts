// The device write policy: denied by default; function, range, value and rate, each refused with its reason.
import { join } from 'node:path';
import t from 'tap';
import { loadManifest } from '../../src/firewall/manifest.js';
import type { DeviceWritePolicy } from '../../src/firewall/manifest.js';
import { WritePolicy, type WriteRequest } from '../../src/firewall/write-policy.js';

const EXAMPLE = join(import.meta.dirname, '..', '..', 'config', 'app_manifest.example.json');
const req = (over: Partial<WriteRequest>): WriteRequest => ({ device: 'press', table: 'holding', address: 100, count: 1, values: [10], kind: 'point', point: 'sp', requester: 'test', ...over });

t.test('the example manifest: what the press may be written, and nothing else', async (t) => {
  const policy = WritePolicy.fromManifest(loadManifest(EXAMPLE));
  t.match(policy.decide(req({})), { allowed: true, verify: true });
  t.match(policy.decide(req({ address: 108, count: 2, values: [250] })), { allowed: true }, 'a 32-bit value in two registers at the end of the range');
  t.match(policy.decide(req({ table: 'coil', address: 3, values: [] })), { allowed: true });
  const denied: [Partial<WriteRequest>, string, RegExp][] = [
    [{ device: 'oven' }, 'no-policy', /device 'oven' may not be written: the manifest has no write policy for it/],
    [{ address: 99 }, 'range', /holding 99 is outside the allowed 100-109/],
    [{ address: 109, count: 2 }, 'range', /holding 109-110 is outside the allowed 100-109/],
    [{ table: 'coil', address: 4, values: [] }, 'range', /coil 4 is outside the allowed 3/],
    [{ values: [251] }, 'value', /value 251 is above the maximum 250/],
    [{ values: [-1] }, 'value', /value -1 is below the minimum 0/],
    [{ values: [Number.NaN] }, 'value', /value NaN is not a finite number/],
    [{ address: 65535, count: 2 }, 'malformed', /not a valid Modbus range/],
    [{ count: 0 }, 'malformed', /not a valid Modbus range/],
  ];
  for (const [over, reason, message] of denied) t.match(policy.decide(req(over)), { allowed: false, reason, message }, reason);
});

t.test('raw registers cannot get around value limits: a rule with Min/Max takes writes by point name only', async (t) => {
  const policy = WritePolicy.fromManifest(loadManifest(EXAMPLE));
  // 0x0001 0x0000 is 65536 as an int32, yet each half is within 0..250
  t.match(policy.decide(req({ kind: 'raw', address: 100, count: 2, values: [1, 0] })), { allowed: false, reason: 'value', message: /has value limits; write it by point name, not as raw registers/ });
  t.match(policy.decide(req({ kind: 'raw', table: 'coil', address: 3, values: [] })), { allowed: true }, 'coils have no limits: raw coil writes are fine');
  const open = new Map<string, DeviceWritePolicy>([['press', { allow: [{ table: 'holding', from: 0, to: 9, verify: false }] }]]);
  t.same(new WritePolicy(open).decide(req({ kind: 'raw', address: 0, count: 3, values: [1, 2, 65535] })), { allowed: true, verify: false }, 'a rule without limits takes raw registers; Verify false is passed on');
});

t.test('a device allowed only coils may not have its registers written', async (t) => {
  const policies = new Map<string, DeviceWritePolicy>([['valve', { allow: [{ table: 'coil', from: 0, to: 7, verify: true }] }]]);
  t.match(new WritePolicy(policies).decide(req({ device: 'valve', address: 0 })), { allowed: false, reason: 'table', message: /no holding writes are allowed/ });
});

t.test('the rate limit: a sliding minute, denied writes do not count', async (t) => {
  let now = 0;
  const policies = new Map<string, DeviceWritePolicy>([['press', { allow: [{ table: 'holding', from: 0, to: 9, max: 100, verify: true }], maxWritesPerMinute: 3 }]]);
  const policy = new WritePolicy(policies, () => now);
  const write = (value = 1): boolean => policy.decide(req({ address: 0, values: [value] })).allowed;
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
