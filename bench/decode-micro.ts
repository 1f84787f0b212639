// Micro-benchmark of Guardian's per-poll CPU path for the throughput bench's load
// (one device, 100 uint16 holding registers coalesced into one read), against src/:
// the decode path in DevicePoller.decode (decodeRegistersAt in place + applyScale), the
// pipeline (report policy + JSON), and what the reference loop does instead.
//   node --import tsx bench/decode-micro.ts
// Prints microseconds per 100-point poll.
import type { DeviceConfig, PointConfig } from '../src/config/types.js';
import type { UpstreamMessage } from '../src/core/types.js';
import { applyScale, decodeRegisters, decodeRegistersAt } from '../src/downstream/modbus/codec.js';
import { planDevice } from '../src/downstream/modbus/planner.js';
import { Pipeline } from '../src/daemon/pipeline.js';

const points: PointConfig[] = Array.from({ length: 100 }, (_, i) => ({
  name: `r${i}`, table: 'holding', address: i, type: 'uint16', byteOrder: 'big', wordOrder: 'big',
  scale: 1, offset: 0, deadband: 0, reportOnChange: false,
}));
const device: DeviceConfig = {
  name: 'dev01', unitId: 1, pollIntervalMs: 10, timeoutMs: 1000, retries: 1, backoff: { initialMs: 1000, maxMs: 60000 },
  maxRegistersPerRequest: 125, maxBitsPerRequest: 2000, maxGap: 16, byteOrder: 'big', wordOrder: 'big', points,
};
const [req] = planDevice(device);
if (req === undefined || req.count !== 100) throw new Error('expected one 100-register request');
const data = Array.from({ length: 100 }, (_, i) => (i * 257) & 0xffff);
let sink: unknown;

function bench(name: string, fn: () => void): void {
  for (let i = 0; i < 3000; i++) fn();
  const n = 20000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  const us = Number(process.hrtime.bigint() - t0) / n / 1000;
  process.stdout.write(`${us.toFixed(1).padStart(7)} µs  ${name}\n`);
}

bench('decode path as in DevicePoller.decode (decodeRegistersAt + applyScale)', () => {
  for (const p of req.points) sink = applyScale(p, decodeRegistersAt(p, data, p.address - req.address));
});
bench('  of which decodeRegisters alone', () => {
  for (const p of req.points) sink = decodeRegisters(p, [data[p.address - req.address] as number]);
});
bench('  new DataView(new Uint8Array(2).buffer) per point (what decodeRegisters allocates)', () => {
  for (const p of req.points) {
    const b = new Uint8Array(2);
    const r = data[p.address - req.address] as number;
    b[0] = r >> 8;
    b[1] = r & 0xff;
    sink = new DataView(b.buffer).getUint16(0);
  }
});
const scratch = new DataView(new ArrayBuffer(8));
bench('  one shared scratch DataView instead', () => {
  for (const p of req.points) {
    scratch.setUint16(0, data[p.address - req.address] as number);
    sink = scratch.getUint16(0);
  }
});

const pipeline = new Pipeline([device], (m: UpstreamMessage) => { sink = m; });
const readings = points.map((p) => ({ point: p.name, value: data[p.address] as number, quality: 'good' as const }));
bench('Pipeline.ingest (100 readings -> telemetry JSON)', () => { pipeline.ingest({ device: 'dev01', ts: Date.now(), readings }); });
const names = points.map((p) => p.name);
let seq = 0;
bench('reference loop: build points + quality, JSON.stringify', () => {
  const pts: Record<string, number> = {};
  const quality: Record<string, string> = {};
  for (let i = 0; i < 100; i++) {
    pts[names[i] as string] = data[i] as number;
    quality[names[i] as string] = 'good';
  }
  seq += 1;
  sink = JSON.stringify({ seq, ts: Date.now(), points: pts, quality });
});
if (sink === undefined) process.stdout.write('\n');
