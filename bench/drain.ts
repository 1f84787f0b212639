// Benchmark: outage drain and SD-card wear of the durable outbox, real peers
// (Mosquitto, pymodbus via test/fixtures/modbus_server.py), Guardian from dist/ as a child.
//
//   node --import tsx bench/drain.ts          (dist/ must be built: npm run build)
//
// stdout: one line per measurement (drain, sd-wear) and a verdict line; progress on stderr.
// Exit code: 0 target met and nothing lost, 1 target missed or loss, 2 the bench itself failed.
//
// Phase "drain" (one Guardian process, gateway id bench-drain):
//   - Guardian reaches the broker only through bench/link-proxy.ts, whose link is cut
//     from the start; the subscriber (mqtt.js, MQTT 5, QoS 1, in this process) is
//     connected to the broker directly the whole time.
//   - Devices (DRAIN_POINTS (20) uint16 holding registers each, one read, every poll
//     is a message), each on its own tcp bus:
//       live:  DRAIN_LIVE_DEVICES (10) every DRAIN_LIVE_INTERVAL_MS (10) = 1,000 msg/s,
//              on their own pymodbus process; polled throughout (the live traffic);
//       burst: DRAIN_BURST_DEVICES (10) every DRAIN_BURST_INTERVAL_MS (1), on a second
//              pymodbus process, only to fill the outbox quickly: that process is
//              killed once the backlog is reached (each burst device then reports one
//              failed poll and backs off for 30-60 s, its device/bus backoff).
//   - Accumulate: `guardian status --config FILE --json` (reads the outbox read-only)
//     is polled until it shows >= DRAIN_BACKLOG (100,000) messages.
//   - Snapshot (the outbox read-only: rows, highest seq per device; /proc/PID/io;
//     file sizes), then the link goes up. Drain time = link-up until every seq up to
//     each device's snapshot maximum has arrived at the subscriber (the reconnect
//     wait, at most upstream.mqtt.reconnect.maxMs = 500 ms here, is included and
//     also shown on its own). Drain rate = backlog rows / drain time. Live = messages
//     with a seq above the snapshot: produced (the outbox's sequences) and delivered
//     during the drain, with their latency (receipt - body ts, 1 ms resolution).
//   - Disk: /proc/PID/io write_bytes (bytes the process caused to be sent to the
//     block layer, counted when a page cache page is dirtied) from Guardian's start
//     to the snapshot / rows appended x 1,000; also wchar (all write() calls) minus
//     what Guardian wrote to its stdout/stderr pipe (its log), i.e. SQLite's writes.
//   - Zero loss: Guardian is stopped (SIGTERM; it drains while the link is up), then
//     the outbox's sequences table gives each device's last seq: every seq from 1 to it
//     must have arrived (or still be in the outbox: "left"); duplicates are counted.
// Phase "sdwear" (a fresh Guardian, fresh state dir, link up, gateway id bench-sdwear):
//   SDWEAR_DEVICES (10) devices x 20 points every 1 s, default config otherwise; after
//   SDWEAR_WARMUP_S (5) s a SDWEAR_S (30) s window of write_bytes, extrapolated to an
//   hour, and the growth of outbox.db + outbox.db-wal.
//
// Knobs: BENCH_PHASES=drain,sdwear; BENCH_CONFIG_PATCH='{"outbox":{"commitIntervalMs":100}}'
// (JSON deep-merged into both Guardian configs, e.g. {"upstream":{"mqtt":{"queue":{"maxInFlight":1000}}}});
// BENCH_CPU_PROFILE=DIR runs the drain-phase Guardian with --cpu-prof and also writes
// guardian-drain.fill.cpuprofile (the last 10 s of filling) and guardian-drain.drain.cpuprofile (the drain window) (summarise
// with bench/profile-summary.ts); BENCH_GUARDIAN_ROOT=DIR runs another Guardian install
// (bin/, dist/, config/, package.json); BENCH_KEEP=1 keeps the temp dir (configs,
// Guardian logs); BENCH_MOSQUITTO_CONF='line;line' adds broker config lines;
// BENCH_BUILD=1 runs npm run build first (otherwise a stale dist/ is only warned about).
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { sleep } from '../test/fixtures/ports.js';
import { CONFIG_PATCH, CPU_PROFILE_DIR, GUARDIAN_ROOT, KB, KEEP, log, MOSQUITTO_EXTRA, PHASES, POINTS, SDWEAR_DEVICES, SDWEAR_INTERVAL_MS, SDWEAR_S, SDWEAR_WARMUP_S } from './drain-env.js';
import { dbFiles, startGuardian, startModbus, type DeviceSpec } from './drain-guardian.js';
import { phaseDrain } from './drain-phase.js';
import { report, type DrainResult, type WearResult } from './drain-report.js';
import { onMessage, watch } from './drain-subscriber.js';
import { ROOT, cleanup, distIsStale, installCleanup, ioDelta, onTeardown, procIo, startMosquitto, stopChild, type ProcIo } from './lib.js';

// ---- phase: sd-wear ----
async function phaseWear(dir: string, brokerUrl: string): Promise<WearResult> {
  const server = await startModbus(SDWEAR_DEVICES);
  const devices: DeviceSpec[] = Array.from({ length: SDWEAR_DEVICES }, (_, i) => ({
    name: `dev${String(i + 1).padStart(2, '0')}`, port: server.port, unit: i + 1, intervalMs: SDWEAR_INTERVAL_MS, quietAfterFailure: false,
  }));
  const gatewayId = 'bench-sdwear';
  const w = watch(gatewayId);
  log(`sd-wear: ${SDWEAR_DEVICES} devices x ${POINTS} points every ${SDWEAR_INTERVAL_MS} ms, link up; ${SDWEAR_WARMUP_S} s warm-up, ${SDWEAR_S} s window`);
  const g = startGuardian(dir, gatewayId, brokerUrl, devices, false);
  const deadline = Date.now() + 20_000;
  while (w.seqs.size < SDWEAR_DEVICES) {
    g.alive();
    if (Date.now() > deadline) throw new Error(`sd-wear: only ${w.seqs.size}/${SDWEAR_DEVICES} devices published within 20 s; log:\n${g.tail()}`);
    await sleep(50);
  }
  await sleep(SDWEAR_WARMUP_S * 1000);
  g.alive();
  const t0 = process.hrtime.bigint();
  const io0 = procIo(g.pid);
  const log0 = g.logBytes();
  const files0 = dbFiles(g.stateDir);
  const n0 = w.telemetry + w.other;
  await sleep(SDWEAR_S * 1000);
  g.alive();
  const io1 = procIo(g.pid);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const files1 = dbFiles(g.stateDir);
  const d: ProcIo = ioDelta(io0, io1);
  const result: WearResult = {
    seconds, msgs: w.telemetry + w.other - n0, writeBytes: d.writeBytes, writes: d.wchar - (g.logBytes() - log0), syscw: d.syscw,
    filesStart: files0, filesEnd: files1,
    commitIntervalMs: ((v: unknown) => (typeof v === 'number' ? String(v) : '0 (default)'))((CONFIG_PATCH['outbox'] as Record<string, unknown> | undefined)?.['commitIntervalMs']),
  };
  log(`sd-wear window: ${seconds.toFixed(1)} s, ${result.msgs} messages, write_bytes ${KB(d.writeBytes)}, write() ${KB(result.writes)} in ${d.syscw} calls (incl. log pipe), `
    + `log ${KB(g.logBytes() - log0)}; outbox.db ${KB(files0.db)} -> ${KB(files1.db)}, wal ${KB(files0.wal)} -> ${KB(files1.wal)}`);
  await stopChild(g.child, 10_000);
  await server.kill();
  return result;
}

function gitDescribe(dir: string): string {
  try {
    return execFileSync('git', ['-C', dir, 'describe', '--always', '--dirty'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'not a git checkout';
  }
}

// ---- main ----
async function main(): Promise<number> {
  installCleanup(log);
  if (GUARDIAN_ROOT !== ROOT) log(`guardian from ${GUARDIAN_ROOT}`);
  if (process.env['BENCH_BUILD'] === '1') execFileSync('npm', ['run', 'build'], { cwd: GUARDIAN_ROOT, stdio: ['ignore', process.stderr, process.stderr] });
  else if (distIsStale(GUARDIAN_ROOT)) log('WARNING: dist/ is older than src/: measuring dist/ as last built (BENCH_BUILD=1 rebuilds)');
  // the outbox module of this layout, or of a checkout from before issue 12 (BENCH_GUARDIAN_ROOT)
  const outboxJs = [['outbox', 'sqlite', 'store.js'], ['gateway', 'outbox', 'sqlite.js']]
    .map((p) => path.join(GUARDIAN_ROOT, 'dist', ...p)).find((p) => existsSync(p));
  if (outboxJs === undefined) throw new Error(`no built outbox under ${GUARDIAN_ROOT}/dist: run npm run build there`);
  const built = statSync(outboxJs).mtime;
  log(`guardian dist/ built ${built.toISOString()} (git ${gitDescribe(GUARDIAN_ROOT)} at the time of this run)`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'guardian-drain-'));
  chmodSync(dir, 0o755); // mosquitto drops to its own user when started as root
  onTeardown(() => (KEEP ? log(`kept ${dir}`) : rmSync(dir, { recursive: true, force: true })));
  if (CPU_PROFILE_DIR !== undefined) mkdirSync(CPU_PROFILE_DIR, { recursive: true });
  log(`machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, state dirs under ${dir} (${execFileSync('df', ['--output=fstype', dir], { encoding: 'utf8' }).split('\n')[1]?.trim() ?? '?'})`
    + (Object.keys(CONFIG_PATCH).length > 0 ? `; config patch ${JSON.stringify(CONFIG_PATCH)}` : ''));

  const broker = await startMosquitto(dir, MOSQUITTO_EXTRA);
  const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'bench-drain-subscriber', clean: true, reconnectPeriod: 0, properties: { receiveMaximum: 65535 } });
  onTeardown(() => sub.endAsync(true));
  sub.on('message', onMessage);
  await sub.subscribeAsync('guardian/#', { qos: 1 });

  let drain: DrainResult | undefined;
  let wear: WearResult | undefined;
  if (PHASES.includes('drain')) drain = await phaseDrain(dir, broker.url, broker.pid);
  if (PHASES.includes('sdwear')) wear = await phaseWear(dir, broker.url);

  return report(drain, wear) ? 0 : 1;
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
