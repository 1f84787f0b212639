// Benchmark: Modbus TCP poll -> MQTT QoS 1 -> received by a subscriber, Guardian
// against the minimal reference loop (bench/reference-loop.ts) on the same load,
// real peers: pymodbus (test/fixtures/modbus_server.py) and Mosquitto.
//
//   npm run build && node --import tsx bench/throughput.ts
//
// stdout: one line of figures per system and one verdict line; progress on stderr.
// Exit code: 0 all targets met, 1 a target missed, 2 the bench itself failed.
//
// Load: BENCH_DEVICES (10) devices x 100 holding registers (uint16 points r0..r99,
// which Guardian coalesces into one 100-register read), each device on its own
// Modbus TCP connection (its own Guardian tcp bus) to one pymodbus process with
// units 1..N (BENCH_MODBUS_SERVERS spreads them over more processes).
// Both systems run as child processes under plain `node` (no loader): Guardian
// from dist/ (built here first when src/ is newer), the reference loop
// transpiled once to node_modules/.cache/guardian-bench/reference-loop.mjs.
//
// Phases, each a fresh process per system (load phases: Guardian, then reference):
//   idle  - every device pollIntervalMs 1 h: the process connects and polls once
//           (every device's first message is seen). VmRSS is read BENCH_IDLE_S (5) s
//           later, and again after at least BENCH_IDLE_SETTLE_S (45) s of idling =
//           "idle RSS" (the target): V8's memory reducer shrinks the young
//           generation and releases startup garbage only after some idle time
//           (Guardian: 20-30 s). These processes run alongside the load phases.
//   fixed - pollIntervalMs 10 (10 x 100 = 1,000 msg/s): after BENCH_WARMUP_S (3) s,
//           a BENCH_FIXED_S (15) s window: messages/s received, CPU% (utime+stime
//           from /proc/PID/stat over wall time, 100% = one core), latency = receipt
//           Date.now() - body ts (both integer ms from the same clock: 1 ms
//           resolution, each figure within +-1 ms), VmRSS at the end = "steady",
//           VmHWM = "peak".
//   max   - Guardian pollIntervalMs 1 (the schema's minimum), the reference loop
//           back to back (--interval 0): messages/s received in a BENCH_MAX_S (10) s
//           window after the warm-up.
// The subscriber (mqtt.js, MQTT 5, QoS 1) lives in this process; it reads only
// the body's prefix ({"seq":N,"ts":N,) and checks seq continuity per device.
// BENCH_CPU_PROFILE=DIR runs both systems with --cpu-prof into DIR (fixed and max
// phases; summarise with bench/profile-summary.ts). BENCH_CONFIG_PATCH='{"outbox":{"store":"memory"}}'
// is merged into Guardian's config. BENCH_PHASES=fixed,max and
// BENCH_SYSTEMS=guardian run a subset (no summary line then); BENCH_NODE_ARGS adds
// node flags to both systems; BENCH_KEEP=1 keeps the temp dir (configs, logs);
// BENCH_GUARDIAN_ROOT runs another Guardian install (a dir with bin/, dist/, config/,
// package.json), e.g. a patched copy, against the same reference.
// The machine's other CPU load during each window is printed ("other processes"):
// on a shared 2-CPU box it moves every figure, so the verdict line shows it too.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import modbusSerial from 'modbus-serial';
import type { ModbusRTU as ModbusRTUType } from 'modbus-serial/ModbusRTU.js';
import mqtt from 'mqtt';
import ts from 'typescript';
import type { ModbusServer } from '../test/fixtures/pymodbus.js';
import { sleep } from '../test/fixtures/ports.js';
import {
  cleanup, CpuMeter, distIsStale, envNum, exited, fmt, installCleanup, memKB, onTeardown, percentile, ROOT, startMosquitto, stopChild, track, writeGuardianConfig,
} from './lib.js';
import { guardianConfigText, startModbusUnits, telemetryHead } from './load.js';
import { summary, type IdleResult, type LoadResult } from './throughput-report.js';

const DEVICES = envNum('BENCH_DEVICES', 10);
const REGISTERS = 100;
const SERVERS = envNum('BENCH_MODBUS_SERVERS', 1);
const IDLE_S = envNum('BENCH_IDLE_S', 5);
const IDLE_SETTLE_S = envNum('BENCH_IDLE_SETTLE_S', 45);
const WARMUP_S = envNum('BENCH_WARMUP_S', 3);
const FIXED_S = envNum('BENCH_FIXED_S', 15);
const MAX_S = envNum('BENCH_MAX_S', 10);
const FIXED_INTERVAL_MS = 10;
const CPU_PROFILE_DIR = process.env['BENCH_CPU_PROFILE'];
/** Extra node flags for both systems' processes (experiments, e.g. --max-semi-space-size=1). */
const NODE_ARGS = (process.env['BENCH_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
/** A subset of phases / systems (experiments: no summary is printed then). */
const PHASES = (process.env['BENCH_PHASES'] ?? 'idle,fixed,max').split(',') as PhaseName[];
const SYSTEMS = (process.env['BENCH_SYSTEMS'] ?? 'guardian,reference').split(',') as System[];
/** Another Guardian install to run (a dir with bin/guardian.js, dist/, config/, package.json): experiments. */
const GUARDIAN_ROOT = process.env['BENCH_GUARDIAN_ROOT'] ?? ROOT;
/** Keep the temp dir (configs, each process's log) for inspection. */
const KEEP = process.env['BENCH_KEEP'] === '1';

const log = (msg: string): void => { process.stderr.write(`[bench] ${msg}\n`); };

// ---- cleanup (bench/lib.ts): everything started is stopped by PID, also on failure ----
installCleanup(log);

// ---- the systems under test ----
interface DeviceSpec { name: string; port: number; unit: number }

function deviceSpecs(servers: ModbusServer[]): DeviceSpec[] {
  return Array.from({ length: DEVICES }, (_, i) => ({
    name: `dev${String(i + 1).padStart(2, '0')}`,
    port: (servers[i % servers.length] as ModbusServer).port,
    unit: i + 1,
  }));
}

function guardianConfig(gatewayId: string, stateDir: string, url: string, devices: DeviceSpec[], intervalMs: number): string {
  return guardianConfigText({ id: gatewayId, stateDir, logLevel: 'info' }, { mqtt: { url } }, devices.map((d) => ({ ...d, intervalMs })), REGISTERS);
}

function compileReference(): string {
  const src = path.join(ROOT, 'bench', 'reference-loop.ts');
  // under node_modules/ so that 'mqtt' and 'modbus-serial' resolve and eslint (bench/) does not see it
  const outDir = path.join(ROOT, 'node_modules', '.cache', 'guardian-bench');
  mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, 'reference-loop.mjs');
  const { outputText } = ts.transpileModule(readFileSync(src, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    fileName: src,
  });
  writeFileSync(out, outputText);
  return out;
}

// ---- the subscriber ----
interface Window {
  firstSeen: Set<string>;
  lastSeq: Map<string, number>;
  gaps: number;
  reordered: number;
  malformed: number;
  measuring: boolean;
  received: number;
  latencies: number[];
}

/** gatewayId -> what the subscriber saw of that process */
const windows = new Map<string, Window>();

function onMessage(topic: string, payload: Buffer): void {
  const now = Date.now();
  const parts = topic.split('/'); // guardian/<gatewayId>/<device>/telemetry
  const w = windows.get(parts[1] ?? '');
  if (w === undefined) return;
  const device = parts[2] ?? '';
  const head = telemetryHead(payload);
  if (head === undefined) { w.malformed += 1; return; }
  const { seq, ts: sent } = head;
  const last = w.lastSeq.get(device) ?? 0;
  if (seq > last + 1) w.gaps += seq - last - 1;
  if (seq <= last) w.reordered += 1;
  else w.lastSeq.set(device, seq);
  w.firstSeen.add(device);
  if (w.measuring) {
    w.received += 1;
    w.latencies.push(now - sent);
  }
}


// ---- phases ----
type System = 'guardian' | 'reference';
type PhaseName = 'idle' | 'fixed' | 'max';

interface Context {
  dir: string;
  url: string;
  devices: DeviceSpec[];
  referenceJs: string;
  helperPids: { name: string; pid: number }[];
}

interface Running {
  system: System;
  phase: PhaseName;
  child: ChildProcess;
  pid: number;
  w: Window;
  tail(): string;
  readyAt: number;
}

const MB = (kb: number): number => (kb * 1024) / 1e6;

/** Start one system for one phase; resolves once every device's first message arrived. */
async function start(ctx: Context, system: System, phase: PhaseName): Promise<Running> {
  const gatewayId = `bench-${system}-${phase}`;
  const w: Window = { firstSeen: new Set(), lastSeq: new Map(), gaps: 0, reordered: 0, malformed: 0, measuring: false, received: 0, latencies: [] };
  windows.set(gatewayId, w);
  const intervalMs = phase === 'idle' ? 3_600_000 : phase === 'fixed' ? FIXED_INTERVAL_MS : system === 'guardian' ? 1 : 0;
  const logFile = path.join(ctx.dir, `${gatewayId}.log`);
  const fd = openSync(logFile, 'w');
  const prof = CPU_PROFILE_DIR !== undefined && phase !== 'idle' ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROFILE_DIR}`, `--cpu-prof-name=${gatewayId}.cpuprofile`] : [];
  let args: string[];
  if (system === 'guardian') {
    const config = path.join(ctx.dir, `${gatewayId}.yaml`);
    writeGuardianConfig(config, guardianConfig(gatewayId, path.join(ctx.dir, `state-${phase}`), ctx.url, ctx.devices, intervalMs));
    args = [...NODE_ARGS, ...prof, path.join(GUARDIAN_ROOT, 'bin', 'guardian.js'), 'run', '--config', config];
  } else {
    args = [...NODE_ARGS, ...prof, ctx.referenceJs, '--mqtt', ctx.url, '--id', gatewayId, '--interval', String(intervalMs),
      ...ctx.devices.flatMap((d) => ['--device', `${d.name}@127.0.0.1:${d.port}/${d.unit}`])];
  }
  const child = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', fd, fd] }));
  closeSync(fd);
  const tail = (): string => readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
  if (child.pid === undefined) throw new Error(`${system}: spawn failed`);
  onTeardown(() => stopChild(child));
  const deadline = Date.now() + 20_000;
  while (w.firstSeen.size < ctx.devices.length) {
    if (exited(child)) throw new Error(`${system} exited (${String(child.exitCode ?? child.signalCode)}) during ${phase}; log:\n${tail()}`);
    if (Date.now() > deadline) throw new Error(`${system}: only ${w.firstSeen.size}/${ctx.devices.length} devices published within 20 s; log:\n${tail()}`);
    await sleep(20);
  }
  return { system, phase, child, pid: child.pid, w, tail, readyAt: Date.now() };
}

function alive(r: Running): void {
  if (exited(r.child)) throw new Error(`${r.system} exited during ${r.phase}; log:\n${r.tail()}`);
}

async function runLoad(ctx: Context, system: System, phase: 'fixed' | 'max'): Promise<LoadResult> {
  const r = await start(ctx, system, phase);
  try {
    await sleep(WARMUP_S * 1000);
    const meter = new CpuMeter([r.pid, ...ctx.helperPids.map((h) => h.pid)]);
    r.w.measuring = true;
    await sleep((phase === 'fixed' ? FIXED_S : MAX_S) * 1000);
    r.w.measuring = false;
    const cpu = meter.read();
    alive(r);
    const mem = memKB(r.pid);
    const sorted = r.w.latencies.sort((a, b) => a - b);
    const result: LoadResult = {
      others: cpu.others,
      rate: r.w.received / cpu.seconds,
      cpu: cpu.pct.get(r.pid) ?? NaN,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      maxLatency: sorted[sorted.length - 1] ?? NaN,
      rssMB: MB(mem.rss),
      hwmMB: MB(mem.hwm),
      gaps: r.w.gaps,
      reordered: r.w.reordered + r.w.malformed,
    };
    const helpers = ctx.helperPids.map((h) => `${h.name} ${(cpu.pct.get(h.pid) ?? NaN).toFixed(0)}%`).join(', ');
    log(`${system} ${phase}: ${fmt(result.rate)} msg/s, cpu ${result.cpu.toFixed(1)}%, latency p50 ${result.p50} p99 ${result.p99} max ${result.maxLatency} ms, `
      + `rss ${result.rssMB.toFixed(1)} MB, hwm ${result.hwmMB.toFixed(1)} MB, seq gaps ${result.gaps}, reordered ${result.reordered} `
      + `| also: ${helpers}, bench+subscriber ${cpu.self.toFixed(0)}%, other processes ${cpu.others.toFixed(0)}% (of ${os.cpus().length * 100}%)`);
    return result;
  } finally {
    await stopChild(r.child);
  }
}

async function modbusCeiling(devices: DeviceSpec[], seconds: number): Promise<number> {
  const ModbusRTU = modbusSerial as unknown as typeof ModbusRTUType;
  let n = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(devices.map(async (d) => {
    const c = new ModbusRTU();
    await c.connectTCP('127.0.0.1', { port: d.port });
    c.setID(d.unit);
    while (Date.now() < end) {
      await c.readHoldingRegisters(0, REGISTERS);
      n += 1;
    }
    await new Promise<void>((resolve) => { c.close(() => resolve()); });
  }));
  return n / seconds;
}

/** Builds dist/ when stale (unless BENCH_BUILD=0); a fresh temp dir, removed at teardown unless BENCH_KEEP. */
function prepare(): string {
  if (GUARDIAN_ROOT !== ROOT) log(`guardian from ${GUARDIAN_ROOT}`);
  else if (process.env['BENCH_BUILD'] !== '0' && distIsStale()) {
    log('dist/ is missing or older than src/: npm run build');
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', process.stderr, process.stderr] });
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'guardian-bench-'));
  chmodSync(dir, 0o755); // mosquitto drops to its own user when started as root
  onTeardown(() => (KEEP ? log(`kept ${dir}`) : rmSync(dir, { recursive: true, force: true })));
  if (CPU_PROFILE_DIR !== undefined) mkdirSync(CPU_PROFILE_DIR, { recursive: true });
  return dir;
}

/** Idle processes of both systems run alongside the load phases (they poll once an hour). */
async function startIdle(ctx: Context, idle: Map<System, Running>, idleResults: Map<System, IdleResult>): Promise<void> {
  if (!PHASES.includes('idle')) return;
  for (const system of SYSTEMS) idle.set(system, await start(ctx, system, 'idle'));
  await sleep(IDLE_S * 1000);
  for (const [system, r] of idle) {
    alive(r);
    idleResults.set(system, { earlyMB: MB(memKB(r.pid).rss), settledMB: NaN, settledAnonMB: NaN, settledAfterS: NaN });
  }
}

async function runLoads(ctx: Context): Promise<Record<System, Partial<Record<'fixed' | 'max', LoadResult>>>> {
  const load: Record<System, Partial<Record<'fixed' | 'max', LoadResult>>> = { guardian: {}, reference: {} };
  for (const phase of ['fixed', 'max'] as const) {
    if (!PHASES.includes(phase)) continue;
    for (const system of SYSTEMS) {
      load[system][phase] = await runLoad(ctx, system, phase);
      await sleep(300);
    }
  }
  return load;
}

/** The idle processes' memory once settled (IDLE_SETTLE_S after their first poll); then they stop. */
async function settleIdle(idle: Map<System, Running>, idleResults: Map<System, IdleResult>, devices: number): Promise<void> {
  for (const [system, r] of idle) {
    const wait = r.readyAt + IDLE_SETTLE_S * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
    alive(r);
    const mem = memKB(r.pid);
    const res = idleResults.get(system) as IdleResult;
    Object.assign(res, { settledMB: MB(mem.rss), settledAnonMB: MB(mem.anon), settledAfterS: (Date.now() - r.readyAt) / 1000 });
    log(`${system} idle: rss ${res.earlyMB.toFixed(1)} MB ${IDLE_S} s after its first poll, ${res.settledMB.toFixed(1)} MB `
      + `(anon ${res.settledAnonMB.toFixed(1)} MB) after ${res.settledAfterS.toFixed(0)} s idle, hwm ${MB(mem.hwm).toFixed(1)} MB, messages ${r.w.lastSeq.size}/${devices} devices`);
    await stopChild(r.child);
  }
}

async function main(): Promise<number> {
  const dir = prepare();
  const referenceJs = compileReference();

  log(`machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}; ${DEVICES} devices x ${REGISTERS} registers, ${SERVERS} pymodbus process(es), one TCP connection per device`);
  const broker = await startMosquitto(dir);
  const servers = await startModbusUnits(DEVICES, REGISTERS, SERVERS);
  const devices = deviceSpecs(servers);
  const ceiling = await modbusCeiling(devices, 2);
  log(`modbus ceiling (bare modbus-serial reads, ${DEVICES} connections, no MQTT): ${fmt(ceiling)} polls/s`);

  const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'bench-subscriber', clean: true, reconnectPeriod: 0 });
  onTeardown(() => sub.endAsync(true));
  sub.on('message', onMessage);
  await sub.subscribeAsync('guardian/+/+/telemetry', { qos: 1 });

  const ctx: Context = {
    dir, url: broker.url, devices, referenceJs,
    helperPids: [{ name: 'mosquitto', pid: broker.pid }, ...servers.map((s, i) => ({ name: `pymodbus${SERVERS > 1 ? i + 1 : ''}`, pid: s.pid() ?? -1 }))],
  };
  const idle = new Map<System, Running>();
  const idleResults = new Map<System, IdleResult>();
  await startIdle(ctx, idle, idleResults);
  const load = await runLoads(ctx);
  await settleIdle(idle, idleResults, devices.length);

  const g = { idle: idleResults.get('guardian'), ...load.guardian };
  const r = { idle: idleResults.get('reference'), ...load.reference };
  if (g.idle === undefined || g.fixed === undefined || g.max === undefined || r.idle === undefined || r.fixed === undefined || r.max === undefined) {
    log('BENCH_PHASES / BENCH_SYSTEMS subset: no summary');
    return 0;
  }
  return summary({ idle: g.idle, fixed: g.fixed, max: g.max }, { idle: r.idle, fixed: r.fixed, max: r.max }, IDLE_S, log) ? 0 : 1;
}

let code = 2;
try {
  code = await main();
} catch (err) {
  log(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
} finally {
  await cleanup(log);
}
process.exit(code);
