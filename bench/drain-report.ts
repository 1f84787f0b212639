// bench/drain.ts's results and its report (stdout: one line per measurement and a verdict), and the CPU profile's trimming.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { KB, LIVE_DEVICES, LIVE_INTERVAL_MS, MB, POINTS, SDWEAR_DEVICES, SDWEAR_INTERVAL_MS, TARGET_RATE } from './drain-env.js';
import { fmt } from './lib.js';

export interface DrainResult {
  backlog: number;
  drainS: number;
  reconnectS: number;
  rate: number;
  rateAfterConnect: number;
  liveProducedRate: number;
  liveDeliveredRate: number;
  liveP50: number;
  liveP99: number;
  liveMax: number;
  loss: number;
  left: number;
  duplicates: number;
  dropped: number;
  accumulateS: number;
  accumulateRate: number;
  diskPer1000: number;
  payloadPer1000: number;
  writesPer1000: number;
  drainDiskPer1000: number;
  files: { db: number; wal: number };
  filesEnd: { db: number; wal: number };
  cpu: string;
  others: number;
  stoppedCleanly: boolean;
}

export interface WearResult {
  seconds: number;
  msgs: number;
  writeBytes: number;
  writes: number;
  syscw: number;
  filesStart: { db: number; wal: number };
  filesEnd: { db: number; wal: number };
  commitIntervalMs: string;
}

/** Print the drain, sd-wear and verdict lines of the phases that ran; true when the drain met its target and lost nothing. */
export function report(drain: DrainResult | undefined, wear: WearResult | undefined): boolean {
  let ok = true;
  if (drain !== undefined) {
    const d = drain;
    process.stdout.write(`drain: ${fmt(d.backlog)} backlog in ${d.drainS.toFixed(1)} s = ${fmt(d.rate)} msg/s `
      + `(link-up to last backlog message; reconnect ${d.reconnectS.toFixed(2)} s, ${fmt(d.rateAfterConnect)} msg/s after it) `
      + `with live ${fmt(d.liveProducedRate)} msg/s (configured ${fmt(LIVE_DEVICES * (1000 / LIVE_INTERVAL_MS))}; delivered ${fmt(d.liveDeliveredRate)} msg/s during the drain, latency p50 ${d.liveP50} p99 ${d.liveP99} max ${d.liveMax} ms) `
      + `| loss ${d.loss}${d.left > 0 ? ` (+${d.left} left in the outbox)` : ''} | duplicates ${d.duplicates} | dropped ${d.dropped} `
      + `| disk ${KB(d.diskPer1000)} per 1,000 msgs buffered (write_bytes, ${(d.diskPer1000 / d.payloadPer1000).toFixed(1)}x the payload; SQLite write() ${KB(d.writesPer1000)}), ${KB(d.drainDiskPer1000)} per 1,000 drained `
      + `| outbox.db ${MB(d.files.db)} + wal ${MB(d.files.wal)} at the snapshot (${MB(d.filesEnd.db)} + ${MB(d.filesEnd.wal)} after the drain) `
      + `| filled at ${fmt(d.accumulateRate)} msg/s\n`);
    ok &&= d.rate >= TARGET_RATE && d.loss === 0 && d.left === 0 && d.dropped === 0 && d.stoppedCleanly;
  }
  if (wear !== undefined) {
    const x = wear;
    const perHour = (b: number): number => (b / x.seconds) * 3600;
    const size = (f: { db: number; wal: number }): number => f.db + f.wal;
    process.stdout.write(`sd-wear: ${SDWEAR_DEVICES} devices × ${POINTS} points @${SDWEAR_INTERVAL_MS / 1000} s: ${MB(perHour(x.writeBytes))}/hour written `
      + `(write_bytes over ${x.seconds.toFixed(0)} s; SQLite write() ${MB(perHour(x.writes))}/hour; ${KB((x.writeBytes / Math.max(1, x.msgs)) * 1000)} per 1,000 msgs at ${(x.msgs / x.seconds).toFixed(1)} msg/s) `
      + `| outbox.db+wal ${MB(size(x.filesEnd), 2)} (${size(x.filesEnd) >= size(x.filesStart) ? '+' : ''}${MB(size(x.filesEnd) - size(x.filesStart), 2)} in the window) `
      + `| commitIntervalMs ${x.commitIntervalMs}\n`);
  }
  if (drain !== undefined) {
    const d = drain;
    const v = (b: boolean): string => (b ? 'ok' : 'MISSED');
    process.stdout.write(`verdict: drain ${fmt(d.rate)} msg/s vs target >= ${fmt(TARGET_RATE)} msg/s: ${v(d.rate >= TARGET_RATE)} `
      + `| zero loss: ${v(d.loss === 0 && d.left === 0 && d.dropped === 0)} | clean stop: ${v(d.stoppedCleanly)} `
      + `| cpu during the drain: ${d.cpu}, other processes ${d.others.toFixed(0)}% (of ${os.cpus().length * 100}%)\n`);
  }
  return ok;
}

// ---- CPU profile: keep only the drain window's samples ----
interface CpuProfile { startTime: number; endTime: number; samples: number[]; timeDeltas: number[]; nodes: unknown[] }

/** V8's profile clock and process.hrtime are both CLOCK_MONOTONIC (microseconds here). */
export function trimProfile(file: string, label: string, fromUs: number, toUs: number): { out: string; kept: number; total: number; endTime: number } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const samples: number[] = [];
  const deltas: number[] = [];
  let t = p.startTime;
  let last = fromUs;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) return;
    samples.push(id);
    deltas.push(t - last);
    last = t;
  });
  const out = file.replace(/\.cpuprofile$/, `.${label}.cpuprofile`);
  writeFileSync(out, JSON.stringify({ ...p, startTime: fromUs, endTime: toUs, samples, timeDeltas: deltas }));
  return { out, kept: samples.length, total: p.samples.length, endTime: p.endTime };
}
