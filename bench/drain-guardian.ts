// bench/drain.ts's Guardian: its config, the child process, and what its state dir shows (read-only).
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import type { ModbusServer } from '../test/fixtures/pymodbus.js';
import { CPU_PROFILE_DIR, GUARDIAN_ROOT, KEEP, POINTS } from './drain-env.js';
import { exited, fileSize, onTeardown, stopChild, track, writeGuardianConfig } from './lib.js';
import { guardianConfigText, startModbusUnits } from './load.js';

/** A polled device; `quietAfterFailure`: after a failed poll it stays quiet for 60 s (its bus and device backoff). */
export interface DeviceSpec { name: string; port: number; unit: number; intervalMs: number; quietAfterFailure: boolean }

function guardianConfig(gatewayId: string, stateDir: string, url: string, devices: DeviceSpec[]): string {
  const quiet = { initialMs: 60_000, maxMs: 60_000 };
  return guardianConfigText(
    { id: gatewayId, stateDir, logLevel: 'info', shutdownTimeoutMs: 60_000 },
    { mqtt: { url, reconnect: { initialMs: 100, maxMs: 500 } } },
    devices.map(({ name, port, unit, intervalMs, quietAfterFailure }) => ({
      name, port, unit, intervalMs, ...(quietAfterFailure ? { bus: { reconnect: quiet }, device: { backoff: quiet } } : {}),
    })),
    POINTS,
  );
}

export interface Guardian {
  child: ChildProcess;
  pid: number;
  config: string;
  stateDir: string;
  /** bytes Guardian wrote to its stdout/stderr (its log) */
  logBytes(): number;
  tail(lines?: number): string;
  alive(): void;
}

export function startGuardian(dir: string, gatewayId: string, url: string, devices: DeviceSpec[], profile: boolean): Guardian {
  const stateDir = path.join(dir, `${gatewayId}-state`);
  const config = path.join(dir, `${gatewayId}.yaml`);
  writeGuardianConfig(config, guardianConfig(gatewayId, stateDir, url, devices));
  const prof = profile && CPU_PROFILE_DIR !== undefined
    ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROFILE_DIR}`, `--cpu-prof-name=guardian-${gatewayId.replace(/^bench-/, '')}.cpuprofile`] : [];
  // stdout/stderr to a pipe, not a file: Guardian's own write_bytes is then its state dir alone
  const child = track(spawn(process.execPath, [...prof, path.join(GUARDIAN_ROOT, 'bin', 'guardian.js'), 'run', '--config', config], {
    cwd: GUARDIAN_ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  }));
  if (child.pid === undefined) throw new Error('guardian: spawn failed');
  let bytes = 0;
  let tail = '';
  const logFile = path.join(dir, `${gatewayId}.log`);
  const onData = (d: Buffer): void => {
    bytes += d.length;
    tail = (tail + d.toString()).slice(-200_000);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const keepLog = (): void => { writeFileSync(logFile, tail); };
  onTeardown(async () => { await stopChild(child, 10_000); if (KEEP) keepLog(); });
  const g: Guardian = {
    child, pid: child.pid, config, stateDir,
    logBytes: () => bytes,
    tail: (lines = 20) => tail.split('\n').slice(-lines - 1).join('\n'),
    alive: () => {
      if (exited(child)) throw new Error(`guardian ${gatewayId} exited (${String(child.exitCode ?? child.signalCode)}); log:\n${g.tail()}`);
    },
  };
  return g;
}

const execFileAsync = promisify(execFile);

interface StatusJson { outbox: { messages: number; bytes: number; dropped: number } | null }

/** `guardian status --config FILE --json`: the outbox as the CLI sees it (read-only). */
export async function guardianStatus(config: string): Promise<StatusJson> {
  const { stdout } = await execFileAsync(process.execPath, [path.join(GUARDIAN_ROOT, 'bin', 'guardian.js'), 'status', '--config', config, '--json'], { cwd: GUARDIAN_ROOT });
  return JSON.parse(stdout) as StatusJson;
}

/** Read the outbox read-only (like `guardian status`), with the figures the bench needs. */
export function readOutbox(stateDir: string): { rows: number; bytes: number; dropped: number; maxSeq: Map<string, number>; sequences: Map<string, number>; seqRows: (device: string) => Set<number> } {
  const db = new Database(path.join(stateDir, 'outbox.db'), { readonly: true, fileMustExist: true });
  try {
    const { n, b } = db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
    const dropped = (db.prepare("SELECT value FROM counters WHERE name = 'dropped'").get() as { value: number } | undefined)?.value ?? 0;
    const maxSeq = new Map((db.prepare("SELECT device, max(seq) AS s FROM outbox WHERE kind = 'telemetry' GROUP BY device").all() as { device: string; s: number }[]).map((r) => [r.device, r.s]));
    const sequences = new Map((db.prepare('SELECT device, seq FROM sequences').all() as { device: string; seq: number }[]).map((r) => [r.device, r.seq]));
    const left = new Map<string, Set<number>>();
    for (const r of db.prepare("SELECT device, seq FROM outbox WHERE kind = 'telemetry'").all() as { device: string; seq: number }[]) {
      let s = left.get(r.device);
      if (s === undefined) { s = new Set(); left.set(r.device, s); }
      s.add(r.seq);
    }
    return { rows: n, bytes: b, dropped, maxSeq, sequences, seqRows: (device) => left.get(device) ?? new Set() };
  } finally {
    db.close();
  }
}

export function dbFiles(stateDir: string): { db: number; wal: number } {
  const f = path.join(stateDir, 'outbox.db');
  return { db: fileSize(f), wal: fileSize(`${f}-wal`) };
}

/** One pymodbus process with units 1..`units`, DRAIN_POINTS registers each. */
export async function startModbus(units: number): Promise<ModbusServer> {
  const [server] = await startModbusUnits(units, POINTS);
  if (server === undefined) throw new Error('pymodbus: not started');
  return server;
}
