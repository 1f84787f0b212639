import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';

/** A failure report as written to disk and published on the failure topic. */
export interface FailureReport {
  readonly id: string;
  readonly ts: number;
  /** `uncaughtException`, `unhandledRejection`, `uncleanExit` (the previous run died without stopping: SIGKILL, a fatal signal, power loss), `keystoreCorrupt` / `credentialsRefused` (the key store refuses the upstream credentials for good while running). */
  readonly kind: string;
  readonly error?: { readonly name: string; readonly message: string; readonly code?: string; readonly stack?: string };
  readonly version: string;
  readonly uptimeS?: number;
  readonly pid?: number;
  readonly recentLog: readonly string[];
}

const MAX_REPORTS = 20;
const SECRET_KEY = /pass(word|phrase)?|secret|token|sharedaccess|authorization|key$/i;

/** Drop values of keys that look like secrets from a JSON log line. */
export function redactLine(line: string): string {
  try {
    return JSON.stringify(JSON.parse(line), (key, value: unknown) => (key !== '' && SECRET_KEY.test(key) ? '[redacted]' : value));
  } catch {
    return '[unparsable log line]';
  }
}

/**
 * The last log lines in memory (a tee of the logger's output), for crash reports.
 * Lines are redacted when a report is written.
 */
export class LogRing extends Writable {
  private readonly lines: string[] = [];

  constructor(private readonly size = 50) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line === '') continue;
      this.lines.push(line);
      if (this.lines.length > this.size) this.lines.shift();
    }
    done();
  }

  recent(): string[] {
    return this.lines.map(redactLine);
  }
}

/**
 * Crash reports on disk (`<stateDir>/failures/`): written synchronously and
 * atomically by a dying process, sent upstream on the next start, deleted only
 * when the upstream acknowledged them. At most 20 are kept (a crash loop must
 * not fill the disk); a `running` marker detects a previous run that ended
 * without a clean stop.
 */
export class FailureStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'failures');
  }

  /** Write a report (temp file, fsync, rename). Synchronous: the caller is about to exit. */
  write(report: FailureReport): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    const file = join(this.dir, `${report.id}.json`);
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o640);
    try {
      writeSync(fd, JSON.stringify(report));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    this.prune();
    return file;
  }

  /** Stored reports, oldest first. */
  list(): FailureReport[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.json')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names.map((n) => JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as FailureReport);
  }

  remove(id: string): void {
    rmSync(join(this.dir, `${id}.json`), { force: true });
  }

  /**
   * Mark this run as started. Returns what the previous run left if it did not
   * stop cleanly (its marker is still there).
   */
  markRunning(pid: number, startedAt: number): { pid: number; startedAt: number } | undefined {
    mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    const marker = join(this.dir, 'running');
    let previous: { pid: number; startedAt: number } | undefined;
    try {
      previous = JSON.parse(readFileSync(marker, 'utf8')) as { pid: number; startedAt: number };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') previous = { pid: 0, startedAt: 0 };
    }
    const tmp = `${marker}.tmp`;
    const fd = openSync(tmp, 'w', 0o640);
    writeSync(fd, JSON.stringify({ pid, startedAt }));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, marker);
    return previous;
  }

  /** A clean stop: no unclean-exit report next time. */
  clearRunning(): void {
    rmSync(join(this.dir, 'running'), { force: true });
  }

  private prune(): void {
    const names = readdirSync(this.dir).filter((n) => n.endsWith('.json')).sort();
    for (const name of names.slice(0, Math.max(0, names.length - MAX_REPORTS))) rmSync(join(this.dir, name), { force: true });
  }
}

/** A report id that sorts by time. */
export function reportId(ts: number): string {
  return `${new Date(ts).toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
}
