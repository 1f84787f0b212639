// Small helpers for the benchmarks in bench/ that start real peers and Guardian as
// child processes: process bookkeeping (everything is stopped by PID, also on
// failure), /proc sampling (CPU, memory, I/O), Mosquitto, the link proxy, the build.
// (bench/throughput.ts keeps its own copies of the first few; this file is for the newer benches.)
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { manifestFor } from '../src/firewall/config-coverage.js';
import { freePort, waitForPort } from '../test/fixtures/ports.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const envNum = (name: string, def: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v}: not a number`);
  return n;
};

export function makeLog(tag: string): (msg: string) => void {
  const t0 = Date.now();
  return (msg: string): void => {
    process.stderr.write(`[${tag} +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
  };
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// ---- cleanup: everything started is stopped by PID, also on failure ----
const teardowns: (() => unknown)[] = [];
const pids = new Set<number>();

export function onTeardown(fn: () => unknown): void {
  teardowns.push(fn);
}

/** Remember a PID that is not a ChildProcess of ours (e.g. one a fixture started): SIGKILLed on exit. */
export function trackPid(pid: number | undefined): void {
  if (pid !== undefined) pids.add(pid);
}

export function track(child: ChildProcess): ChildProcess {
  const pid = child.pid;
  if (pid !== undefined) {
    pids.add(pid);
    child.once('exit', () => pids.delete(pid));
  }
  return child;
}

let installed = false;
/** Run teardowns on SIGINT/SIGTERM and SIGKILL whatever is left on exit. */
export function installCleanup(log: (msg: string) => void): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => {
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => { log(`${sig}: stopping`); void cleanup(log).finally(() => process.exit(2)); });
  }
}

export async function cleanup(log: (msg: string) => void): Promise<void> {
  for (const fn of teardowns.splice(0).reverse()) {
    try { await fn(); } catch (err) { log(`teardown: ${(err as Error).message}`); }
  }
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the child has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (exited(child) || child.pid === undefined) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try { process.kill(child.pid, 'SIGTERM'); } catch { return; }
  const timer = setTimeout(() => { if (child.pid !== undefined && !exited(child)) process.kill(child.pid, 'SIGKILL'); }, graceMs);
  await done;
  clearTimeout(timer);
}

// ---- /proc sampling ----
export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  return Number(fields[11]) + Number(fields[12]); // utime (14) + stime (15)
}

export function memKB(pid: number): { rss: number; hwm: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon') };
}

/** /proc/PID/io: wchar = bytes passed to write()-like calls; writeBytes = bytes the process caused to be sent to the block layer (counted when a page is dirtied). */
export interface ProcIo { rchar: number; wchar: number; syscw: number; writeBytes: number; cancelledWriteBytes: number }

export function procIo(pid: number): ProcIo {
  const text = readFileSync(`/proc/${pid}/io`, 'utf8');
  const v = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { rchar: v('rchar'), wchar: v('wchar'), syscw: v('syscw'), writeBytes: v('write_bytes'), cancelledWriteBytes: v('cancelled_write_bytes') };
}

export function ioDelta(a: ProcIo, b: ProcIo): ProcIo {
  return {
    rchar: b.rchar - a.rchar, wchar: b.wchar - a.wchar, syscw: b.syscw - a.syscw,
    writeBytes: b.writeBytes - a.writeBytes, cancelledWriteBytes: b.cancelledWriteBytes - a.cancelledWriteBytes,
  };
}

/** Busy ticks of the whole machine (all CPUs), from /proc/stat. */
export function machineBusyTicks(): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return user + nice + system + irq + softirq + steal;
}

export class CpuMeter {
  private readonly t0 = process.hrtime.bigint();
  private readonly ticks0: Map<number, number>;
  private readonly machine0 = machineBusyTicks();
  private readonly self0 = process.cpuUsage();
  constructor(private readonly watched: number[]) {
    this.ticks0 = new Map(watched.map((pid) => [pid, cpuTicks(pid)]));
  }

  /** CPU% per pid (100 = one core), of this process, and of everything else on the machine, since construction. */
  read(): { pct: Map<number, number>; self: number; others: number; seconds: number } {
    const seconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
    const ticks = new Map(this.watched.map((pid) => {
      let now: number;
      try { now = cpuTicks(pid); } catch { now = NaN; }
      return [pid, now - (this.ticks0.get(pid) ?? 0)];
    }));
    const pct = new Map([...ticks].map(([pid, n]) => [pid, (n / CLK_TCK / seconds) * 100]));
    const u = process.cpuUsage(this.self0);
    const self = ((u.user + u.system) / 1e6 / seconds) * 100;
    const machine = ((machineBusyTicks() - this.machine0) / CLK_TCK / seconds) * 100;
    const watched = [...pct.values()].filter(Number.isFinite).reduce((a, b) => a + b, 0);
    return { pct, self, others: Math.max(0, machine - watched - self), seconds };
  }
}

export function fileSize(file: string): number {
  try { return statSync(file).size; } catch { return 0; }
}

// ---- peers ----
export async function startMosquitto(dir: string, extra: string[] = []): Promise<{ url: string; port: number; pid: number }> {
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false',
    'log_dest stderr', 'log_type error', 'log_type warning',
    'max_queued_messages 0', // no drops at the subscriber: seq gaps then mean the system under test lost them
    'set_tcp_nodelay true',
    ...extra,
  ].join('\n') + '\n', { mode: 0o644 });
  const child = track(spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let out = '';
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  onTeardown(() => stopChild(child, 2000));
  try {
    await waitForPort(port);
  } catch (err) {
    throw new Error(`mosquitto did not start: ${(err as Error).message}\n${out}`);
  }
  if (exited(child) || child.pid === undefined) throw new Error(`mosquitto exited: ${out}`);
  return { url: `mqtt://127.0.0.1:${port}`, port, pid: child.pid };
}

export interface LinkProxy {
  readonly port: number;
  readonly pid: number;
  up(): Promise<void>;
  down(): Promise<void>;
  /** Connections accepted while down (each destroyed at once): the client's connect attempts. */
  refused(): Promise<number>;
}

/**
 * bench/link-proxy.ts in its own process (so that the bench's subscriber and the
 * proxy do not share one event loop): a TCP pass-through to targetPort whose link
 * can be cut (test/fixtures/proxy.ts createLinkProxy, the one used by the tests).
 */
export async function startLinkProxy(targetPort: number, initiallyUp: boolean): Promise<LinkProxy> {
  const script = path.join(ROOT, 'bench', 'link-proxy.ts');
  const child = track(spawn(process.execPath, ['--import', 'tsx', script, String(targetPort), initiallyUp ? 'up' : 'down'], {
    cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'],
  }));
  onTeardown(() => stopChild(child, 1000));
  if (child.pid === undefined || child.stdout === null || child.stdin === null) throw new Error('link proxy: spawn failed');
  const stdin = child.stdin;
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => { waiting.shift()?.(line); });
  const next = (): Promise<string> => new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('link proxy: no answer within 10 s')), 10_000);
    waiting.push((line) => { clearTimeout(timer); resolve(line); });
  });
  const ready = JSON.parse(await next()) as { port: number };
  const call = async (cmd: string): Promise<string> => {
    const answer = next();
    stdin.write(`${cmd}\n`);
    return answer;
  };
  return {
    port: ready.port,
    pid: child.pid,
    up: async () => { await call('up'); },
    down: async () => { await call('down'); },
    refused: async () => Number(await call('refused')),
  };
}

// ---- the build ----
export function distIsStale(root = ROOT): boolean {
  const newest = (dir: string, ext: string, pick: (a: number, b: number) => number, init: number): number => {
    let acc = init;
    for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (entry.isFile() && entry.name.endsWith(ext)) acc = pick(acc, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
    }
    return acc;
  };
  try {
    const oldestBuilt = newest(path.join(root, 'dist'), '.js', Math.min, Infinity);
    return !Number.isFinite(oldestBuilt) || newest(path.join(root, 'src'), '.ts', Math.max, 0) > oldestBuilt;
  } catch {
    return true;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
}

// ---- config patches (BENCH_CONFIG_PATCH) ----
function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `patch` laid over `base`, objects merged key by key (arrays and values replaced). */
export function deepMerge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const b = out[k];
    out[k] = isObject(b) && isObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

/** BENCH_CONFIG_PATCH: a JSON object merged into Guardian's generated config, e.g. '{"outbox":{"store":"memory"}}'. */
export function configPatch(): Record<string, unknown> {
  const patch: unknown = JSON.parse(process.env['BENCH_CONFIG_PATCH'] ?? '{}');
  if (!isObject(patch)) throw new Error('BENCH_CONFIG_PATCH must be a JSON object');
  return patch;
}

/**
 * Write a Guardian config (JSON text) and, next to it, a manifest that allows
 * exactly what it uses: `guardian run` needs both.
 */
export function writeGuardianConfig(file: string, configText: string): void {
  const manifest = `${file.replace(/\.ya?ml$/, '')}.app_manifest.json`;
  const doc = JSON.parse(configText) as Record<string, unknown>;
  doc['firewall'] = { manifest, ...(doc['firewall'] as Record<string, unknown> | undefined) };
  const text = JSON.stringify(doc, null, 1);
  writeFileSync(file, text);
  writeFileSync(manifest, JSON.stringify(manifestFor(parseConfig(text, file)), null, 1));
}
