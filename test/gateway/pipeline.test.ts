import t from 'tap';
import { stringify } from 'yaml';
import type { DeviceConfig } from '../../src/core/config.js';
import type { RawReading, UpstreamMessage } from '../../src/core/types.js';
import { parseConfig } from '../../src/gateway/config/load.js';
import { Pipeline, type TelemetryBody } from '../../src/gateway/pipeline.js';

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
  return { poll: (ts, readings) => p.ingest({ device: 'dev', ts, readings }), sent };
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
  t.same(p.ingest({ device: 'dev', ts: 0, readings: [good('zzz', 1), good('a', false)] })?.points, { a: false });
});
