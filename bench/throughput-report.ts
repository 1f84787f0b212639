// bench/throughput.ts's results and its report: one line of figures per system and the verdict line (stdout).
import os from 'node:os';
import { fmt } from './lib.js';

const TARGETS = { throughput: 0.8, cpu: 1.5, p99Ms: 2, idleRssMB: 70 };

export interface LoadResult {
  /** CPU% of all other processes on the machine during the window (noise) */
  others: number;
  rate: number;
  cpu: number;
  p50: number;
  p99: number;
  maxLatency: number;
  rssMB: number;
  hwmMB: number;
  gaps: number;
  reordered: number;
}

export interface IdleResult {
  /** VmRSS IDLE_S after the first poll's messages arrived */
  earlyMB: number;
  /** VmRSS after at least IDLE_SETTLE_S of idling (V8's memory reducer has run by then) */
  settledMB: number;
  settledAnonMB: number;
  settledAfterS: number;
}

/** One system's results of every phase. */
export interface SystemResults {
  idle: IdleResult;
  fixed: LoadResult;
  max: LoadResult;
}

function line(name: string, idleS: number, { idle, fixed, max }: SystemResults): string {
  const gaps = fixed.gaps + max.gaps;
  const reordered = fixed.reordered + max.reordered;
  return `${name}: max ${fmt(max.rate)} msg/s | fixed ${fmt(fixed.rate)} msg/s: cpu ${fixed.cpu.toFixed(1)}% `
    + `p50 ${fixed.p50} ms p99 ${fixed.p99} ms (1 ms res.) | rss idle ${idle.settledMB.toFixed(1)} MB (${idle.earlyMB.toFixed(1)} MB ${idleS} s after start) `
    + `steady ${fixed.rssMB.toFixed(1)} MB peak ${fixed.hwmMB.toFixed(1)} MB (max phase ${max.hwmMB.toFixed(1)} MB) `
    + `| seq ${gaps + reordered === 0 ? 'ok' : `gaps ${gaps}, reordered ${reordered}`}`;
}

/** Print both systems' lines and the verdict against TARGETS; true when every target is met. */
export function summary(g: SystemResults, r: SystemResults, idleS: number, log: (msg: string) => void): boolean {
  const throughput = g.max.rate / r.max.rate;
  const cpu = g.fixed.cpu / r.fixed.cpu;
  const ok = {
    throughput: throughput >= TARGETS.throughput,
    cpu: cpu <= TARGETS.cpu,
    p99: g.fixed.p99 <= TARGETS.p99Ms,
    rss: g.idle.settledMB <= TARGETS.idleRssMB,
  };
  const v = (b: boolean): string => (b ? 'ok' : 'MISSED');
  const noise = Math.max(g.fixed.others, g.max.others, r.fixed.others, r.max.others);
  process.stdout.write(`${line('guardian', idleS, g)}\n${line('reference', idleS, r)}\n`);
  process.stdout.write(`targets: throughput ${throughput.toFixed(3)}x (>=${TARGETS.throughput}) ${v(ok.throughput)}, `
    + `cpu ${cpu.toFixed(3)}x (<=${TARGETS.cpu}) ${v(ok.cpu)}, p99 ${g.fixed.p99} ms (<=${TARGETS.p99Ms}) ${v(ok.p99)}, `
    + `idle rss ${g.idle.settledMB.toFixed(1)} MB (<=${TARGETS.idleRssMB}) ${v(ok.rss)}`
    + ` | ${os.cpus().length} CPUs, other processes up to ${noise.toFixed(0)}%\n`);
  if (noise > 20) log(`WARNING: other processes used up to ${noise.toFixed(0)}% CPU (of ${os.cpus().length * 100}%) during the measurement windows: figures are noisy, run again on a quiet machine`);
  return Object.values(ok).every(Boolean);
}
