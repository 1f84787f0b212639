// The "drain" phase of bench/drain.ts (see the comment there): fill the outbox with the
// link cut, snapshot, link up, time the drain, stop Guardian and count what was lost.
import os from 'node:os';
import path from 'node:path';
import { sleep } from '../test/fixtures/ports.js';
import {
  ACCUMULATE_TIMEOUT_S, BACKLOG, BURST_DEVICES, BURST_INTERVAL_MS, CPU_PROFILE_DIR, DRAIN_TIMEOUT_S, LIVE_DEVICES, LIVE_INTERVAL_MS, log, MB, POINTS,
} from './drain-env.js';
import { dbFiles, guardianStatus, readOutbox, startGuardian, startModbus, type DeviceSpec, type Guardian } from './drain-guardian.js';
import { trimProfile, type DrainResult } from './drain-report.js';
import { Seqs, watch, type Watch } from './drain-subscriber.js';
import { CpuMeter, fmt, ioDelta, memKB, percentile, procIo, startLinkProxy, stopChild, type ProcIo } from './lib.js';

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

type Outbox = ReturnType<typeof readOutbox>;

function drainDevices(livePort: number, burstPort: number): DeviceSpec[] {
  return [
    ...Array.from({ length: LIVE_DEVICES }, (_, i) => ({ name: `live${String(i + 1).padStart(2, '0')}`, port: livePort, unit: i + 1, intervalMs: LIVE_INTERVAL_MS, quietAfterFailure: false })),
    ...Array.from({ length: BURST_DEVICES }, (_, i) => ({ name: `burst${String(i + 1).padStart(2, '0')}`, port: burstPort, unit: i + 1, intervalMs: BURST_INTERVAL_MS, quietAfterFailure: true })),
  ];
}

/** The outbox and Guardian's process when the backlog is reached, just before the link goes up. */
interface Snapshot {
  readonly hr: number; readonly io: ProcIo; readonly logBytes: number; readonly outbox: Outbox; readonly files: { db: number; wal: number };
  readonly accumulateS: number;
  /** Backlog messages (seq up to each device's snapshot maximum) not yet received. */
  readonly remaining: number;
}

function takeSnapshot(g: Guardian, w: Watch, t0: number, io0: ProcIo): Snapshot {
  const hr = hrUs();
  const io = procIo(g.pid);
  const rss = memKB(g.pid);
  const logBytes = g.logBytes();
  const outbox = readOutbox(g.stateDir);
  const files = dbFiles(g.stateDir);
  const accumulateS = (Date.now() - t0) / 1000;
  let remaining = 0;
  for (const [device, max] of outbox.maxSeq) {
    const s = w.seqs.get(device);
    for (let seq = 1; seq <= max; seq++) if (s?.has(seq) !== true) remaining += 1;
  }
  const telemetryRows = [...outbox.maxSeq.values()].reduce((a, b) => a + b, 0);
  log(`snapshot: ${fmt(outbox.rows)} rows (${fmt(telemetryRows)} telemetry by seq, ${outbox.dropped} dropped) in ${accumulateS.toFixed(1)} s; `
    + `outbox.db ${MB(files.db)} + wal ${MB(files.wal)}; guardian write_bytes ${MB(ioDelta(io0, io).writeBytes)}, rss ${(rss.rss / 1024).toFixed(0)} MB; link up`);
  return { hr, io, logBytes, outbox, files, accumulateS, remaining };
}

/** What the subscriber sees after link-up: backlog still to arrive, live messages and their latency. */
interface DrainTracker {
  remaining: number;
  tFirst: number | undefined;
  tDone: number | undefined;
  hrDone: number;
  readonly latencies: number[];
  liveDelivered: number;
  deliveredInWindow: number;
  readonly done: Promise<void>;
}

function trackDrain(w: Watch, snap: Snapshot): DrainTracker {
  let resolveDone: () => void = () => undefined;
  const t: DrainTracker = {
    remaining: snap.remaining, tFirst: undefined, tDone: undefined, hrDone: 0, latencies: [], liveDelivered: 0, deliveredInWindow: 0,
    done: new Promise<void>((resolve) => { resolveDone = resolve; }),
  };
  w.onTelemetry = (device, seq, ts, first, now) => {
    if (t.tDone !== undefined) return;
    t.tFirst ??= now;
    t.deliveredInWindow += 1;
    const snapMax = snap.outbox.maxSeq.get(device) ?? 0;
    if (seq > snapMax) {
      t.liveDelivered += 1;
      t.latencies.push(now - ts);
    } else if (first) {
      t.remaining -= 1;
      if (t.remaining === 0) {
        t.tDone = now;
        t.hrDone = hrUs();
        resolveDone();
      }
    }
  };
  return t;
}

/** Wait (with progress every 2 s) until the whole backlog has arrived; returns when it did. */
async function awaitDrain(g: Guardian, t: DrainTracker, tUp: number): Promise<number> {
  const deadline = tUp + DRAIN_TIMEOUT_S * 1000;
  const progress = setInterval(() => {
    const s = (Date.now() - tUp) / 1000;
    log(`  ${s.toFixed(1)} s after link-up: ${fmt(t.remaining)} of the backlog still to arrive, ${fmt(t.deliveredInWindow)} delivered (${fmt(t.deliveredInWindow / s)} msg/s)`);
  }, 2000);
  try {
    while (t.tDone === undefined) {
      g.alive();
      if (Date.now() > deadline) throw new Error(`drain: ${fmt(t.remaining)} backlog messages still missing ${DRAIN_TIMEOUT_S} s after link-up; log:\n${g.tail()}`);
      await Promise.race([t.done, sleep(200)]);
    }
    return t.tDone;
  } finally {
    clearInterval(progress);
  }
}

/** Right after the drain: CPU per process, Guardian's memory, and the live messages produced meanwhile (logged). */
function drainDone(g: Guardian, snap: Snapshot, meter: CpuMeter, pids: number[], t: DrainTracker, tUp: number, tDone: number): { ioDone: ProcIo; drainS: number; reconnectS: number; produced: number; cpuText: string; others: number } {
  const cpu = meter.read();
  const ioDone = procIo(g.pid);
  const rss = memKB(g.pid);
  const atDone = readOutbox(g.stateDir);
  const drainS = (tDone - tUp) / 1000;
  const reconnectS = ((t.tFirst ?? tDone) - tUp) / 1000;
  let produced = 0;
  for (const [device, seq] of atDone.sequences) produced += seq - (snap.outbox.maxSeq.get(device) ?? 0);
  const names = ['guardian', 'mosquitto', 'pymodbus(live)', 'link-proxy'];
  const cpuText = `${names.map((n, i) => `${n} ${(cpu.pct.get(pids[i] as number) ?? NaN).toFixed(0)}%`).join(', ')}, bench+subscriber ${cpu.self.toFixed(0)}%`;
  log(`drain done: ${drainS.toFixed(2)} s after link-up (first message after ${reconnectS.toFixed(2)} s); cpu ${cpuText}, other processes ${cpu.others.toFixed(0)}% (of ${os.cpus().length * 100}%); guardian rss ${(rss.rss / 1024).toFixed(0)} MB hwm ${(rss.hwm / 1024).toFixed(0)} MB; outbox ${fmt(atDone.rows)} rows`);
  return { ioDone, drainS, reconnectS, produced, cpuText, others: cpu.others };
}

/** Zero loss: stop Guardian (it drains while the link is up), then compare with its sequences table. */
async function stopAndCount(g: Guardian, w: Watch): Promise<{ hrStop: number; stoppedCleanly: boolean; final: Outbox; filesEnd: { db: number; wal: number }; loss: number; left: number }> {
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
  return { hrStop, stoppedCleanly, final, filesEnd, loss, left };
}

/** BENCH_CPU_PROFILE: the last 10 s of the fill and the drain window, each its own profile. */
async function trimProfiles(hrStart: number, hrSnap: number, hrUp: number, hrDone: number, hrStop: number): Promise<void> {
  if (CPU_PROFILE_DIR === undefined) return;
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

export async function phaseDrain(dir: string, brokerUrl: string, brokerPid: number): Promise<DrainResult> {
  const live = await startModbus(LIVE_DEVICES);
  const burst = BURST_DEVICES > 0 ? await startModbus(BURST_DEVICES) : undefined;
  const proxy = await startLinkProxy(Number(new URL(brokerUrl).port), false);
  const devices = drainDevices(live.port, burst?.port ?? 0);
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
  const snap = takeSnapshot(g, w, t0, io0);
  const t = trackDrain(w, snap);
  const pids = [g.pid, brokerPid, live.pid() ?? -1, proxy.pid];
  const meter = new CpuMeter(pids);
  const hrUp = hrUs();
  await proxy.up();
  const tUp = Date.now();
  const tDone = await awaitDrain(g, t, tUp);
  const { ioDone, drainS, reconnectS, produced, cpuText, others } = drainDone(g, snap, meter, pids, t, tUp, tDone);

  const end = await stopAndCount(g, w);
  await trimProfiles(hrStart, snap.hr, hrUp, t.hrDone, end.hrStop);

  const acc = ioDelta(io0, snap.io);
  const drainIo = ioDelta(snap.io, ioDone);
  const sorted = t.latencies.sort((a, b) => a - b);
  const backlog = snap.outbox.rows;
  return {
    backlog, drainS, reconnectS,
    rate: backlog / drainS,
    rateAfterConnect: backlog / Math.max(1e-3, drainS - reconnectS),
    liveProducedRate: produced / drainS,
    liveDeliveredRate: t.liveDelivered / drainS,
    liveP50: percentile(sorted, 0.5), liveP99: percentile(sorted, 0.99), liveMax: sorted[sorted.length - 1] ?? NaN,
    loss: end.loss, left: end.left, duplicates: w.duplicates, dropped: end.final.dropped,
    accumulateS: snap.accumulateS, accumulateRate: backlog / snap.accumulateS,
    diskPer1000: (acc.writeBytes / backlog) * 1000,
    payloadPer1000: (snap.outbox.bytes / backlog) * 1000,
    writesPer1000: ((acc.wchar - (snap.logBytes - log0)) / backlog) * 1000,
    drainDiskPer1000: (drainIo.writeBytes / t.deliveredInWindow) * 1000,
    files: snap.files, filesEnd: end.filesEnd,
    cpu: cpuText, others, stoppedCleanly: end.stoppedCleanly,
  };
}

