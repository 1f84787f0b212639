import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { GuardianError } from '../../core/errors.js';
import type { UpstreamMessage } from '../../core/types.js';
import { ALL_IDS, ClockStepDetector, type IdRange, type Outbox, type OutboxEntry, type OutboxStats } from '../contract.js';
import { Checkpointer } from './checkpointer.js';
import { currentBootId, SequenceLedger } from './sequence-ledger.js';
import { ACK_COMMIT_MS, AGE_SWEEP_MS, MAX_PENDING_ACKS, MAX_STAGED, TAIL_CACHE_BYTES, type SqliteOutboxOptions } from './options.js';
import { dropOverBounds, storageError } from './bounds.js';
import { idRuns, prepareStatements, rowEntry, SCHEMA, type Row, type Statements } from './schema.js';
import { TailCache, type SizedEntry } from './tail-cache.js';

export type { SqliteOutboxOptions } from './options.js';

interface Staged {
  readonly message: UpstreamMessage;
  readonly enqueuedAt: number;
}

/**
 * The durable outbox: SQLite in WAL mode. A message is committed before it can
 * be taken for sending, and deleted only after the upstream acknowledged it, so
 * it survives a broker outage, a SIGKILL and a restart. Appends and acknowledgements
 * are batched into one transaction per turn (or per `commitIntervalMs`) to spare
 * SD cards. Each device's last sequence number is committed with its message, so
 * numbering continues after a restart (a number whose message was never committed
 * was never sent, so reusing it confuses no consumer).
 */
export class SqliteOutbox implements Outbox {
  private db: Database.Database | undefined;
  private staged: Staged[] = [];
  private acked: SizedEntry[] = [];
  /** The commit new messages wait for (end of turn, `commitIntervalMs`, or a retry after a failure). */
  private commitTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** The commit of acknowledgements (ACK_COMMIT_MS): apart from new messages, fewer pages written per commit. */
  private ackTimer: NodeJS.Timeout | undefined;
  private readonly tail = new TailCache(TAIL_CACHE_BYTES);
  private checkpointer: Checkpointer | undefined;
  /** Per lane (keyed by the range's start): the highest id handed out by paging. */
  private readonly cursors = new Map<string, number>();
  private maxId = 0;
  /** The highest id stored before this process opened the outbox (rows above it were timed by this run's clock). */
  private runStartId = 0;
  private lastAgeSweep = Number.NEGATIVE_INFINITY;
  private retry: SizedEntry[] = [];
  private readonly inFlight = new Map<number, SizedEntry>();
  private rows = 0;
  private bytes = 0;
  private dropped = 0;
  /** Drops not yet reported upstream (durable, like `dropped`). */
  private unreported = 0;
  private readonly listeners: (() => void)[] = [];
  private readonly fullListeners: ((full: boolean) => void)[] = [];
  private full = false;
  private readonly now: () => number;
  private readonly steps: ClockStepDetector;
  private statements: Statements | undefined;
  private ledger: SequenceLedger | undefined;
  /** Set while commits fail (disk full): the error was logged once, recovery will be. */
  private failing: GuardianError | undefined;
  /** Staged messages dropped because commits kept failing; counted at the next commit. */
  private stagedDrops = 0;

  constructor(private readonly options: SqliteOutboxOptions) {
    this.now = options.now ?? Date.now;
    this.steps = new ClockStepDetector(options.monoNow);
  }

  /** Open (creating) the database and recover its counters; everything stored is pending again. */
  open(): void {
    let db: Database.Database;
    try {
      mkdirSync(dirname(this.options.path), { recursive: true, mode: 0o750 });
      db = new Database(this.options.path);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      db.exec(SCHEMA);
    } catch (err) {
      throw this.storageError(err);
    }
    this.db = db;
    // Checkpoints (and their fsyncs) run in a worker thread, not inside a commit on the event loop.
    db.pragma('wal_autocheckpoint = 0');
    db.pragma('journal_size_limit = 33554432'); // after a backlog drained, the WAL file shrinks back to 32 MB
    this.checkpointer = new Checkpointer(this.options.path, this.options.log, () => {
      const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
      return { ok: true, busy: r?.busy ?? 0, log: r?.log ?? 0, checkpointed: r?.checkpointed ?? 0 };
    });
    this.checkpointer.start();
    this.statements = prepareStatements(db);
    this.ledger = new SequenceLedger(db, this.options.log, this.options.synchronous, this.options.seqReserve);
    try {
      this.ledger.open('bootId' in this.options ? this.options.bootId : currentBootId());
    } catch (err) {
      throw this.storageError(err);
    }
    const { n, b } = db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
    this.rows = n;
    this.bytes = b;
    this.maxId = (db.prepare('SELECT coalesce(max(id), 0) AS m FROM outbox').get() as { m: number }).m;
    this.tail.reset(this.maxId);
    this.runStartId = this.maxId;
    const counter = (name: string): number => (db.prepare('SELECT value FROM counters WHERE name = ?').get(name) as { value: number } | undefined)?.value ?? 0;
    this.dropped = counter('dropped');
    this.unreported = counter('unreported');
    this.options.log.info({ path: this.options.path, pending: n, bytes: b }, 'outbox opened');
  }

  /** Move the enqueue times of what this run stored before a wall-clock step (see ClockStepDetector). */
  private clockStepped(jumpMs: number): void {
    this.staged = this.staged.map((st) => ({ ...st, enqueuedAt: st.enqueuedAt + jumpMs }));
    try {
      const moved = this.requireStatements().shiftTimes.run(jumpMs, this.runStartId).changes;
      if (moved > 0) this.options.log.info({ code: 'GUARDIAN_E_CLOCK_JUMP', jumpMs, moved }, 'the clock stepped: stored messages keep their real age for the age bound');
    } catch (err) {
      // Only the age bound is affected (it may drop these early or late): log it, keep going.
      this.options.log.warn({ err: this.storageError(err), jumpMs }, 'could not move stored timestamps after a clock step');
    }
  }

  /** The last committed sequence number of every device (above anything a lost WAL tail may have used). */
  sequences(): Map<string, number> {
    return this.requireLedger().committed();
  }

  append(message: UpstreamMessage): void {
    const now = this.now();
    const step = this.steps.check(now);
    if (step !== 0) this.clockStepped(step);
    this.staged.push({ message, enqueuedAt: now });
    if (this.staged.length > MAX_STAGED) {
      // Commits are failing (disk full) and memory is the only place left: keep the newest.
      this.staged.shift();
      this.stagedDrops += 1;
    }
    this.scheduleCommit();
  }

  take(max: number, range: IdRange = ALL_IDS): OutboxEntry[] {
    const out: SizedEntry[] = [];
    this.retry = this.retry.filter((e) => {
      const { id } = e.entry;
      if (out.length >= max || id < range.from || id > range.to) return true;
      out.push(e);
      return false;
    });
    // Page through the lane past its cursor: the database up to the tail cache's
    // floor, the cache above it; skip what is in flight or waiting in `retry`.
    const key = `${range.from}-${range.to}`;
    if (!this.cursors.has(key) && this.cursors.size > 8) this.cursors.clear(); // lanes of past connections
    let after = Math.max(this.cursors.get(key) ?? 0, range.from - 1);
    const queued = new Set(this.retry.map((e) => e.entry.id));
    const skip = (id: number): boolean => this.inFlight.has(id) || queued.has(id);
    while (out.length < max && after < range.to) {
      if (after >= this.tail.floor) {
        const { items, last } = this.tail.scan(after, range.to, max - out.length, skip);
        out.push(...items);
        after = last;
        break;
      }
      const upTo = Math.min(range.to, this.tail.floor);
      const rows = this.requireStatements().page.all(after, upTo, max - out.length) as Row[];
      if (rows.length === 0) after = upTo;
      for (const row of rows) {
        after = row.id;
        if (!skip(row.id)) out.push(rowEntry(row));
      }
    }
    this.cursors.set(key, after);
    for (const item of out) this.inFlight.set(item.entry.id, item);
    return out.map((item) => item.entry);
  }

  lastId(): number {
    return this.maxId;
  }

  ack(id: number): void {
    const item = this.inFlight.get(id);
    if (item === undefined) return;
    this.inFlight.delete(id);
    this.tail.remove(id);
    this.acked.push(item);
    // With a commit interval, acknowledgements ride with the interval's commit (one commit per
    // interval in all); committing every turn, they wait for their own timer.
    if (this.options.commitIntervalMs > 0) this.scheduleCommit();
    else if (this.ackTimer === undefined) this.ackTimer = setTimeout(() => this.commitOrRetry(true), ACK_COMMIT_MS);
  }

  release(ids: readonly number[]): void {
    const back = ids.map((id) => this.inFlight.get(id)).filter((e): e is SizedEntry => e !== undefined);
    for (const item of back) this.inFlight.delete(item.entry.id);
    this.retry = [...this.retry, ...back].sort((a, b) => a.entry.id - b.entry.id);
  }

  stats(): OutboxStats {
    const oldest = this.rows === 0 ? undefined : (this.requireStatements().oldest.get() as { t: number | null }).t ?? undefined;
    return { pending: Math.max(0, this.rows - this.inFlight.size - this.acked.length) + this.staged.length, staged: this.staged.length, inFlight: this.inFlight.size, dropped: this.dropped, oldestEnqueuedAt: oldest };
  }

  /** Bytes of payload stored (for the bound and for health). */
  storedBytes(): number {
    return this.bytes;
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Commit what is staged now, and the acknowledgements unless `withAcks` is
   * false (they wait for their own timer unless MAX_PENDING_ACKS piled up).
   */
  flush(withAcks = true): void {
    this.clearCommitTimer();
    const staged = this.staged;
    const acked = withAcks || this.acked.length >= MAX_PENDING_ACKS ? this.acked : [];
    if (acked === this.acked) this.clearAckTimer();
    if (staged.length === 0 && acked.length === 0) return;
    const s = this.requireStatements();
    const added: SizedEntry[] = [];
    let nextId = this.maxId;
    let removed = 0;
    const ledger = this.requireLedger();
    const messages = staged.map((st) => st.message);
    try {
      ledger.commit(messages, () => {
        for (const { message, enqueuedAt } of staged) {
          const bytes = Buffer.byteLength(message.payload);
          nextId += 1; // explicit ids: no AUTOINCREMENT bookkeeping page written on every commit
          s.insert.run(nextId, message.kind, message.device ?? null, message.seq ?? null, message.payload, bytes, enqueuedAt);
          added.push({ entry: { id: nextId, message, enqueuedAt }, bytes });
        }
        if (this.stagedDrops > 0) s.countDrops.run(this.stagedDrops, this.stagedDrops);
        // A message's row holds its sequence number until it is deleted; then `sequences` does
        // (one page less in the commit of every new message: SD-card wear).
        ledger.keep(acked.map((a) => a.entry.message));
        for (const [from, to] of idRuns(acked.map((a) => a.entry.id))) removed += s.removeRange.run(from, to).changes;
      });
    } catch (err) {
      throw this.storageError(err);
    }
    this.maxId = nextId;
    this.rows += added.length - removed;
    this.bytes += added.reduce((n, a) => n + a.bytes, 0) - acked.reduce((n, a) => n + a.bytes, 0);
    for (const item of added) this.tail.add(item);
    this.checkpointer?.committed();
    this.staged = [];
    if (acked === this.acked) this.acked = [];
    if (this.stagedDrops > 0) this.reportDrops(this.stagedDrops, 'commits failed and the in-memory staging limit was reached');
    this.stagedDrops = 0;
    if (this.failing !== undefined) {
      this.options.log.info({ code: this.failing.code, recovered: true, committed: staged.length }, 'outbox writes work again');
      this.failing = undefined;
    }
    this.enforceBounds();
    if (staged.length > 0) for (const listener of this.listeners) listener();
  }

  async close(): Promise<void> {
    const checkpointer = this.checkpointer;
    this.checkpointer = undefined;
    await checkpointer?.close(); // its connection first: the last one to close checkpoints and removes the WAL
    try {
      this.flush();
      this.ledger?.closeCleanly();
    } catch (err) {
      this.options.log.error({ err, unsaved: this.staged.length }, 'outbox: final commit failed');
    }
    this.db?.close();
    this.db = undefined;
    this.statements = undefined;
    this.ledger = undefined;
  }

  private enforceBounds(): void {
    this.updateFull();
    const sweep = this.options.maxAgeMs > 0 && this.now() - this.lastAgeSweep >= AGE_SWEEP_MS;
    const overBytes = this.options.policy !== 'stop-polling' && this.bytes > this.options.maxBytes;
    if (!sweep && !overBytes) return;
    let cutoff: number | undefined;
    if (sweep) {
      // at most once a second (AGE_SWEEP_MS)
      this.lastAgeSweep = this.now();
      cutoff = this.now() - this.options.maxAgeMs;
    }
    const maxBytes = this.options.policy !== 'stop-polling' ? this.options.maxBytes : undefined;
    const dropped = dropOverBounds(this.requireDb(), this.requireStatements(), this.requireLedger(), { cutoff, maxBytes, bytes: this.bytes, rows: this.rows });
    if (dropped.length === 0) return;
    for (const row of dropped) {
      this.rows -= 1;
      this.bytes -= row.bytes;
      this.inFlight.delete(row.id);
      this.tail.remove(row.id);
    }
    const gone = new Set(dropped.map((r) => r.id));
    this.retry = this.retry.filter((e) => !gone.has(e.entry.id));
    this.reportDrops(dropped.length, 'outbox bound reached');
  }

  private reportDrops(count: number, why: string): void {
    this.dropped += count;
    this.unreported += count;
    const err = new GuardianError('GUARDIAN_E_OUTBOX_DROPPED', `${why}: dropped ${count} oldest messages`, {
      dropped: count, droppedTotal: this.dropped, maxBytes: this.options.maxBytes, maxAgeMs: this.options.maxAgeMs,
    });
    this.options.log.warn({ err }, err.message);
  }

  onFullChange(listener: (full: boolean) => void): void {
    this.fullListeners.push(listener);
  }

  /** stop-polling: full at maxBytes, not full again below 90 % of it (no flapping). */
  private updateFull(): void {
    if (this.options.policy !== 'stop-polling') return;
    const full = this.full ? this.bytes >= this.options.maxBytes * 0.9 : this.bytes >= this.options.maxBytes;
    if (full === this.full) return;
    this.full = full;
    if (full) {
      const err = new GuardianError('GUARDIAN_E_OUTBOX_FULL', `outbox full (${this.bytes} of ${this.options.maxBytes} bytes): polling paused until it drains`, { bytes: this.bytes, maxBytes: this.options.maxBytes });
      this.options.log.warn({ err }, err.message);
    } else {
      this.options.log.info({ code: 'GUARDIAN_E_OUTBOX_FULL', bytes: this.bytes, resumed: true }, 'outbox below its bound again: polling resumes');
    }
    for (const listener of this.fullListeners) listener(full);
  }

  unreportedDrops(): number {
    return this.unreported;
  }

  markDropsReported(count: number): void {
    this.unreported = Math.max(0, this.unreported - count);
    this.requireStatements().setCounter.run('unreported', this.unreported);
  }

  private scheduleCommit(): void {
    if (this.commitTimer !== undefined) return;
    const { commitIntervalMs } = this.options;
    this.commitTimer = commitIntervalMs > 0 ? setTimeout(() => this.commitOrRetry(true), commitIntervalMs) : setImmediate(() => this.commitOrRetry(false));
  }

  /** A timed commit; when it fails (disk full), everything waits in memory and it is retried every second. */
  private commitOrRetry(withAcks: boolean): void {
    this.commitTimer = undefined;
    if (withAcks) this.ackTimer = undefined;
    try {
      this.flush(withAcks);
    } catch (err) {
      const failure = err instanceof GuardianError ? err : new GuardianError('GUARDIAN_E_OUTBOX_WRITE', String(err), {}, { cause: err });
      if (this.failing === undefined) {
        this.options.log.error({ err: failure, staged: this.staged.length }, `${failure.message}; readings wait in memory, retrying every second`);
      }
      this.failing = failure;
      this.clearCommitTimer();
      this.commitTimer = setTimeout(() => this.commitOrRetry(true), 1000);
    }
  }

  private clearCommitTimer(): void {
    if (this.commitTimer === undefined) return;
    clearTimeout(this.commitTimer as NodeJS.Timeout);
    clearImmediate(this.commitTimer as NodeJS.Immediate);
    this.commitTimer = undefined;
  }

  private clearAckTimer(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  private storageError(err: unknown): GuardianError {
    return storageError(this.options.path, err);
  }

  private requireDb(): Database.Database {
    if (this.db === undefined) throw new GuardianError('GUARDIAN_E_INTERNAL', 'outbox used before open() or after close()');
    return this.db;
  }

  private requireLedger(): SequenceLedger {
    if (this.ledger === undefined) throw new GuardianError('GUARDIAN_E_INTERNAL', 'outbox used before open() or after close()');
    return this.ledger;
  }

  private requireStatements(): Statements {
    if (this.statements === undefined) throw new GuardianError('GUARDIAN_E_INTERNAL', 'outbox used before open() or after close()');
    return this.statements;
  }
}

