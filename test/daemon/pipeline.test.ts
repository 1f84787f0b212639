import t from 'tap';
import { stringify } from 'yaml';
import type { DeviceConfig } from '../../src/config/types.js';
import type { RawReading, UpstreamMessage } from '../../src/core/types.js';
import { parseConfig } from '../../src/config/load.js';
import { Pipeline, type TelemetryBody } from '../../src/daemon/pipeline.js';

function device(points: Record<string, unknown>[]): DeviceConfig {
  const doc = {
    version: 1, gateway: { id: 'g' }, upstream: { mqtt: { url: 'mqtt://h' } },
    buses: [{ name: 'b', type: 'tcp', host: 'h', devices: [{ name: 'dev', unitId: 1, points }] }],
  };
  return parseConfig(stringify(doc)).buses[0]!.devices[0]!;
}

function harness(points: Record<string, unknown>[]): { poll: (ts: number, readings: RawReading[]) => TelemetryBody | undefined; sent: UpstreamMessage[] } {
  const sent: UpstreamMessage[] = [];
  const p = new Pipeline([device(points)], (m) => sent.push(m));
  return {
    poll: (ts, readings) => {
      const m = p.ingest({ device: 'dev', ts, readings });
      return m === undefined ? undefined : JSON.parse(m.payload) as TelemetryBody;
    },
    sent,
  };
}

const good = (point: string, value: number | boolean | string): RawReading => ({ point, value, quality: 'good' });

t.test('without report-on-change every poll is one message, with seq 1, 2, 3', async (t) => {
  const h = harness([{ name: 'a', table: 'holding', address: 0, type: 'uint16' }, { name: 'b', table: 'coil', address: 0, type: 'bool' }]);
  for (let i = 0; i < 3; i++) h.poll(1000 + i, [good('a', 5), good('b', true)]);
  t.equal(h.sent.length, 3);
  t.same(h.sent.map((m) => (JSON.parse(m.payload) as TelemetryBody).seq), [1, 2, 3]);
  t.same(JSON.parse(h.sent[0]!.payload), { seq: 1, ts: 1000, points: { a: 5, b: true }, quality: { a: 'good', b: 'good' } });
  t.match(h.sent[0], { kind: 'telemetry', device: 'dev' });
});

t.test('deadband compares with the last reported value, so slow drift is still reported', async (t) => {
  const h = harness([{ name: 'x', table: 'holding', address: 0, type: 'int16', reportOnChange: true, deadband: 1 }]);
  const reported = [10, 10.5, 11, 11.2, 9.9, 20].map((v, i) => h.poll(i, [good('x', v)])?.points['x']);
  t.same(reported, [10, undefined, undefined, 11.2, 9.9, 20]);
  t.same(h.sent.map((m) => (JSON.parse(m.payload) as TelemetryBody).seq), [1, 2, 3, 4], 'suppressed polls use no seq');
});

t.test('report-on-change without deadband reports any change; heartbeat re-reports the same value', async (t) => {
  const h = harness([{ name: 's', table: 'holding', address: 0, type: 'string', length: 2, reportOnChange: true, heartbeatMs: 1000 }]);
  t.ok(h.poll(0, [good('s', 'ab')]));
  t.notOk(h.poll(500, [good('s', 'ab')]));
  t.ok(h.poll(600, [good('s', 'ac')]));
  t.notOk(h.poll(1599, [good('s', 'ac')]));
  t.same(h.poll(1600, [good('s', 'ac')])?.points, { s: 'ac' }, 'heartbeat 1000 ms after the last report');
});

t.test('a quality change is always reported; bad readings carry null and the reason', async (t) => {
  const h = harness([
    { name: 'x', table: 'holding', address: 0, type: 'int16', reportOnChange: true },
    { name: 'y', table: 'holding', address: 1, type: 'int16', reportOnChange: true },
  ]);
  h.poll(0, [good('x', 1), good('y', 2)]);
  const bad = h.poll(1, [{ point: 'x', value: null, quality: 'bad:timeout' }, good('y', 2)]);
  t.same(bad, { seq: 2, ts: 1, points: { x: null }, quality: { x: 'bad:timeout' } });
  t.notOk(h.poll(2, [{ point: 'x', value: null, quality: 'bad:timeout' }, good('y', 2)]), 'still bad, nothing new');
  t.same(h.poll(3, [good('x', 1), good('y', 2)])?.quality, { x: 'good' }, 'recovery is reported even at the same value');
});

t.test('readings of unknown devices or points are ignored', async (t) => {
  const sent: UpstreamMessage[] = [];
  const p = new Pipeline([device([{ name: 'a', table: 'coil', address: 0, type: 'bool' }])], (m) => sent.push(m));
  t.equal(p.ingest({ device: 'other', ts: 0, readings: [good('a', true)] }), undefined);
  t.same(JSON.parse(p.ingest({ device: 'dev', ts: 0, readings: [good('zzz', 1), good('a', false)] })?.payload ?? '{}'), { seq: 1, ts: 0, points: { a: false }, quality: { a: 'good' } });
});

t.test('the hand-written JSON body is the document JSON.stringify would write, for every kind of value and name', async (t) => {
  // (names are limited to letters, digits, '_', '.', '-' by the schema; integer-like names are the odd case for objects)
  const names = ['plain', 'a.b', 'x-1', 'Z_9', 'constructor', 'toString', '0', '12'];
  const values: (number | boolean | string | null)[] = [0, -0, 1.5, -7, 1e21, 1e-7, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity, true, false,
    '', 'text', 'a "quoted" \\ string', 'line\nbreak\u0001', '\ud83d', 'ünïcode'];
  const points = names.map((name, i) => ({ name, table: 'holding', address: i, type: 'float32' }));
  const sent: UpstreamMessage[] = [];
  const p = new Pipeline([device(points)], (m) => sent.push(m));
  let seq = 0;
  for (let round = 0; round < 40; round++) {
    const readings: RawReading[] = names.map((name, i) => {
      const bad = (round + i) % 7 === 0;
      return { point: name, value: bad ? null : values[(round * 3 + i) % values.length] as number, quality: bad ? `bad:exception:${i}` : 'good' };
    });
    p.ingest({ device: 'dev', ts: 1_700_000_000_000 + round, readings });
    seq += 1;
    const expected: Record<string, unknown> = { seq, ts: 1_700_000_000_000 + round, points: {}, quality: {} };
    for (const r of readings) {
      (expected['points'] as Record<string, unknown>)[r.point] = r.quality === 'good' ? r.value : null;
      (expected['quality'] as Record<string, unknown>)[r.point] = r.quality;
    }
    const payload = sent[sent.length - 1]!.payload;
    t.same(JSON.parse(payload), JSON.parse(JSON.stringify(expected)), `round ${round}: the same document (NaN and Infinity as null)`);
    t.match(payload, new RegExp(`^\\{"seq":${seq},"ts":\\d+,"points":\\{"plain":`), 'keys in config order, seq and ts first');
  }
});
