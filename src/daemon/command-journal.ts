/**
 * The repeat cache of the command router, on disk: a transaction that was
 * accepted is never run again while its command could still be fresh, across a
 * restart or a crash too. One JSON line per event, appended and fsynced before
 * the command runs (`accepted`), and appended again with the reply once it is
 * known (not fsynced: losing it only means a repeat is answered "outcome
 * unknown" instead of with the reply). At open the file is read, torn or
 * damaged lines (a power cut in the middle of an append) are skipped and
 * counted, entries past their time are dropped, and the rest is written back
 * compactly through the state directory's one atomic write (`writeFileSafe`).
 */
import { closeSync, constants, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { sweepTemps, writeFileSafe } from '../identity/safe-fs.js';

export interface JournalEntry {
  /** `device/name/transaction`. */
  readonly key: string;
  /** Epoch ms after which the command can no longer be fresh. */
  readonly untilWall: number;
  /** The reply sent, when it is known. */
  readonly reply?: unknown;
}

/** Rewrite the file once it holds this many more lines than live entries. */
const COMPACT_SLACK = 4096;

function parseLine(line: string): JournalEntry | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return undefined; // a torn or damaged line: counted by the caller
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const { key, untilWall, reply } = doc as Record<string, unknown>;
  if (typeof key !== 'string' || typeof untilWall !== 'number' || !Number.isFinite(untilWall)) return undefined;
  return reply === undefined ? { key, untilWall } : { key, untilWall, reply };
}

export class CommandJournal {
  private fd: number | undefined;
  private lines = 0;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  /** The entries still in force at `now` (the last line of a key wins); the file is compacted to them. */
  open(now: number): Map<string, JournalEntry> {
    const live = new Map<string, JournalEntry>();
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let damaged = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const entry = parseLine(line);
      if (entry === undefined) damaged += 1;
      else live.set(entry.key, entry);
    }
    for (const [key, entry] of live) if (entry.untilWall < now) live.delete(key);
    if (damaged > 0) this.log.warn({ file: this.file, damaged }, `command journal: ${damaged} damaged line(s) skipped (a write cut short by a crash or power loss)`);
    this.rewrite([...live.values()]);
    return live;
  }

  /** Durable before it returns: the command may run once this is on disk. */
  accepted(key: string, untilWall: number): void {
    this.append({ key, untilWall }, true);
  }

  answered(key: string, untilWall: number, reply: unknown): void {
    this.append({ key, untilWall, reply }, false);
  }

  /** Compact to `live` when the file has grown well past it. */
  maybeCompact(live: () => JournalEntry[]): void {
    const entries = live();
    if (this.lines > entries.length + COMPACT_SLACK) this.rewrite(entries);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private append(entry: JournalEntry, sync: boolean): void {
    if (this.fd === undefined) this.fd = openSync(this.file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    if (sync) fsyncSync(this.fd);
    this.lines += 1;
  }

  private rewrite(entries: readonly JournalEntry[]): void {
    this.close();
    sweepTemps(path.dirname(this.file), path.basename(this.file)); // a rewrite a crash cut short
    writeFileSafe(this.file, Buffer.from(entries.map((e) => `${JSON.stringify(e)}\n`).join('')), 'replace');
    this.lines = entries.length;
  }
}
