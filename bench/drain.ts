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
import {
  ACCUMULATE_TIMEOUT_S, BACKLOG, BURST_DEVICES, BURST_INTERVAL_MS, CONFIG_PATCH, CPU_PROFILE_DIR, DRAIN_TIMEOUT_S, GUARDIAN_ROOT, KB, KEEP, LIVE_DEVICES,
  LIVE_INTERVAL_MS, log, MB, MOSQUITTO_EXTRA, PHASES, POINTS, SDWEAR_DEVICES, SDWEAR_INTERVAL_MS, SDWEAR_S, SDWEAR_WARMUP_S,
} from './drain-env.js';
import { dbFiles, guardianStatus, readOutbox, startGuardian, startModbus, type DeviceSpec, type Guardian } from './drain-guardian.js';
import { report, trimProfile, type DrainResult, type WearResult } from './drain-report.js';
import { onMessage, Seqs, watch, type Watch } from './drain-subscriber.js';
import {
  CpuMeter, ROOT, cleanup, distIsStale, fmt, installCleanup, ioDelta, memKB, onTeardown, percentile, procIo, startLinkProxy, startMosquitto, stopChild, type ProcIo,
} from './lib.js';

const hrUs = (): number => Number(process.hrtime.bigint() / 1000n);

// ---- phase: drain ----
/** Poll `guardian status --json` until the outbox holds BACKLOG messages (none may arrive meanwhile: the link is cut). */
async function accumulate(g: Guardian, w: Watch, t0: number): Promise<void> {
  let stored = 0;
  let lastLog = 0;
  for (;;) {
    g.alive();
    if (w.telemetry > 0) throw new Error('messages arrived while the link was cut');
    const status = await guardianStatus(g.config).catch((err: unknown) => {
      // e.g. before Guardian created its state dir: `guardian status` then fails (GUARDIAN_E_INTERNAL)
      log(`status failed: ${String((err as { stderr?: unknown }).stderr ?? err).trim().split('\n')[0] ?? ''}`);
      return undefined;
    });
    stored = status?.outbox?.messages ?? stored;
    const s = (Date.now() - t0) / 1000;
    if (Date.now() - lastLog > 3000) {
      lastLog = Date.now();
      log(`  outbox ${fmt(stored)} messages after ${s.toFixed(1)} s (${fmt(stored / s)} msg/s), ${(status?.outbox?.bytes ?? 0) / 1e6 | 0} MB payload, dropped ${status?.outbox?.dropped ?? '?'}`);
    }
    if (stored >= BACKLOG) break;
    if (s > ACCUMULATE_TIMEOUT_S) throw new Error(`only ${fmt(stored)} messages stored after ${ACCUMULATE_TIMEOUT_S} s; log:\n${g.tail()}`);
    await sleep(stored > BACKLOG * 0.9 ? 300 : 1500); // each status call is a node process: not too often on a small machine
  }
}

/** After the stop: every seq up to each device's last must have arrived ("loss") or still be in the outbox ("left"). */
async function countLoss(final: ReturnType<typeof readOutbox>, w: Watch): Promise<{ loss: number; left: number }> {
  let loss = 0;
  let left = 0;
  const lossDeadline = Date.now() + 5000;
  for (;;) {
    loss = 0;
    left = 0;
    for (const [device, last] of final.sequences) {
      const inOutbox = final.seqRows(device);
      for (const seq of (w.seqs.get(device) ?? new Seqs()).missing(last)) {
        if (inOutbox.has(seq)) left += 1;
        else loss += 1;
      }
    }
    if (loss === 0 || Date.now() > lossDeadline) break;
    await sleep(200); // the broker may still be delivering the last acknowledged messages
  }
  return { loss, left };
}

async function phaseDrain(dir: string, brokerUrl: string, brokerPid: number): Promise<DrainResult> {
  const live = await startModbus(LIVE_DEVICES);
  const burst = BURST_DEVICES > 0 ? await startModbus(BURST_DEVICES) : undefined;
  const proxy = await startLinkProxy(Number(new URL(brokerUrl).port), false);
  const devices: DeviceSpec[] = [
    ...Array.from({ length: LIVE_DEVICES }, (_, i) => ({ name: `live${String(i + 1).padStart(2, '0')}`, port: live.port, unit: i + 1, intervalMs: LIVE_INTERVAL_MS, quietAfterFailure: false })),
    ...Array.from({ length: BURST_DEVICES }, (_, i) => ({ name: `burst${String(i + 1).padStart(2, '0')}`, port: burst?.port ?? 0, unit: i + 1, intervalMs: BURST_INTERVAL_MS, quietAfterFailure: true })),
  ];
  const gatewayId = 'bench-drain';
  const w = watch(gatewayId);
  log(`drain: ${LIVE_DEVICES} live devices @${LIVE_INTERVAL_MS} ms + ${BURST_DEVICES} burst devices @${BURST_INTERVAL_MS} ms, ${POINTS} points each; link cut; filling the outbox to ${fmt(BACKLOG)}`);
  const g = startGuardian(dir, gatewayId, `mqtt://127.0.0.1:${proxy.port}`, devices, true);
  const t0 = Date.now();
  const hrStart = hrUs();
  const io0 = procIo(g.pid);
  const log0 = g.logBytes();

  await accumulate(g, w, t0); // watching `guardian status --json`
  if (burst !== undefined) {
    await burst.kill(); // the burst devices fall quiet (one failed poll each, then 30-60 s backoff)
    await sleep(300);
  }

  // snapshot, then the link goes up
  const hrSnap = hrUs();
  const ioSnap = procIo(g.pid);
  const rssSnap = memKB(g.pid);
  const logSnap = g.logBytes();
  const snap = readOutbox(g.stateDir);
  const filesSnap = dbFiles(g.stateDir);
  const accumulateS = (Date.now() - t0) / 1000;
  let remaining = 0;
  for (const [device, max] of snap.maxSeq) {
    const s = w.seqs.get(device);
    for (let seq = 1; seq <= max; seq++) if (s?.has(seq) !== true) remaining += 1;
  }
  const telemetryRows = [...snap.maxSeq.values()].reduce((a, b) => a + b, 0);
  log(`snapshot: ${fmt(snap.rows)} rows (${fmt(telemetryRows)} telemetry by seq, ${snap.dropped} dropped) in ${accumulateS.toFixed(1)} s; `
    + `outbox.db ${MB(filesSnap.db)} + wal ${MB(filesSnap.wal)}; guardian write_bytes ${MB(ioDelta(io0, ioSnap).writeBytes)}, rss ${(rssSnap.rss / 1024).toFixed(0)} MB; link up`);
  let tFirst: number | undefined;
  let tDone: number | undefined;
  let hrDone = 0;
  const latencies: number[] = [];
  let liveDelivered = 0;
  let deliveredInWindow = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => { resolveDone = resolve; });
  w.onTelemetry = (device, seq, ts, first, now) => {
    if (tDone !== undefined) return;
    tFirst ??= now;
    deliveredInWindow += 1;
    const snapMax = snap.maxSeq.get(device) ?? 0;
    if (seq > snapMax) {
      liveDelivered += 1;
      latencies.push(now - ts);
    } else if (first) {
      remaining -= 1;
      if (remaining === 0) {
        tDone = now;
        hrDone = hrUs();
        resolveDone();
      }
    }
  };
  const meter = new CpuMeter([g.pid, brokerPid, live.pid() ?? -1, proxy.pid]);
  const hrUp = hrUs();
  await proxy.up();
  const tUp = Date.now();
  const deadline = tUp + DRAIN_TIMEOUT_S * 1000;
  const progress = setInterval(() => {
    const s = (Date.now() - tUp) / 1000;
    log(`  ${s.toFixed(1)} s after link-up: ${fmt(remaining)} of the backlog still to arrive, ${fmt(deliveredInWindow)} delivered (${fmt(deliveredInWindow / s)} msg/s)`);
  }, 2000);
  try {
    while (tDone === undefined) {
      g.alive();
      if (Date.now() > deadline) throw new Error(`drain: ${fmt(remaining)} backlog messages still missing ${DRAIN_TIMEOUT_S} s after link-up; log:\n${g.tail()}`);
      await Promise.race([done, sleep(200)]);
    }
  } finally {
    clearInterval(progress);
  }
  const cpu = meter.read();
  const ioDone = procIo(g.pid);
  const rss = memKB(g.pid);
  const atDone = readOutbox(g.stateDir);
  const drainS = (tDone - tUp) / 1000;
  const reconnectS = ((tFirst ?? tDone) - tUp) / 1000;
  let produced = 0;
  for (const [device, seq] of atDone.sequences) produced += seq - (snap.maxSeq.get(device) ?? 0);
  const names = ['guardian', 'mosquitto', 'pymodbus(live)', 'link-proxy'];
  const pids = [g.pid, brokerPid, live.pid() ?? -1, proxy.pid];
  const cpuText = `${names.map((n, i) => `${n} ${(cpu.pct.get(pids[i] as number) ?? NaN).toFixed(0)}%`).join(', ')}, bench+subscriber ${cpu.self.toFixed(0)}%`;
  log(`drain done: ${drainS.toFixed(2)} s after link-up (first message after ${reconnectS.toFixed(2)} s); cpu ${cpuText}, other processes ${cpu.others.toFixed(0)}% (of ${os.cpus().length * 100}%); guardian rss ${(rss.rss / 1024).toFixed(0)} MB hwm ${(rss.hwm / 1024).toFixed(0)} MB; outbox ${fmt(atDone.rows)} rows`);

  // zero loss: stop Guardian (it drains while the link is up), then compare with its sequences table
  await sleep(1000);
  const hrStop = hrUs();
  await stopChild(g.child, 60_000);
  const stoppedCleanly = g.child.exitCode === 0;
  if (!stoppedCleanly) log(`guardian exit ${String(g.child.exitCode ?? g.child.signalCode)}; log:\n${g.tail()}`);
  const final = readOutbox(g.stateDir);
  const filesEnd = dbFiles(g.stateDir);
  const { loss, left } = await countLoss(final, w);
  log(`stopped: ${final.sequences.size} devices, last seqs ${[...final.sequences.values()].reduce((a, b) => a + b, 0)} in total; `
    + `received ${fmt(w.telemetry)} telemetry (${fmt(w.duplicates)} duplicates, ${w.malformed} malformed) + ${w.other} health/failure; `
    + `missing ${loss}, still in the outbox ${left} (${final.rows} rows), dropped ${final.dropped}; outbox.db ${MB(filesEnd.db)} + wal ${MB(filesEnd.wal)}`);

  if (CPU_PROFILE_DIR !== undefined) {
    await sleep(500);
    const file = path.join(CPU_PROFILE_DIR, 'guardian-drain.cpuprofile');
    try {
      const f = trimProfile(file, 'fill', Math.max(hrStart, hrSnap - 10e6), hrSnap);
      const t = trimProfile(file, 'drain', hrUp, hrDone);
      log(`cpu profile: ${file}; last 10 s of the fill: ${f.out} (${f.kept} samples); drain window: ${t.out} (${t.kept} of ${t.total} samples; `
        + `the profile ends ${((t.endTime - hrStop) / 1000).toFixed(0)} ms after the SIGTERM by this process's clock: the clocks agree if that is small and positive)`);
    } catch (err) {
      log(`cpu profile: ${(err as Error).message}`);
    }
  }

  const acc = ioDelta(io0, ioSnap);
  const drainIo = ioDelta(ioSnap, ioDone);
  const sorted = latencies.sort((a, b) => a - b);
  return {
    backlog: snap.rows, drainS, reconnectS,
    rate: snap.rows / drainS,
    rateAfterConnect: snap.rows / Math.max(1e-3, drainS - reconnectS),
    liveProducedRate: produced / drainS,
    liveDeliveredRate: liveDelivered / drainS,
    liveP50: percentile(sorted, 0.5), liveP99: percentile(sorted, 0.99), liveMax: sorted[sorted.length - 1] ?? NaN,
    loss, left, duplicates: w.duplicates, dropped: final.dropped,
    accumulateS, accumulateRate: snap.rows / accumulateS,
    diskPer1000: (acc.writeBytes / snap.rows) * 1000,
    payloadPer1000: (snap.bytes / snap.rows) * 1000,
    writesPer1000: ((acc.wchar - (logSnap - log0)) / snap.rows) * 1000,
    drainDiskPer1000: (drainIo.writeBytes / deliveredInWindow) * 1000,
    files: filesSnap, filesEnd,
    cpu: cpuText, others: cpu.others, stoppedCleanly,
  };
}

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
