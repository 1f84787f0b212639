import type { Logger } from 'pino';
import { GuardianError } from '../core/errors.js';
import type { UpstreamMessage } from '../core/types.js';
import { ALL_IDS, ClockStepDetector, type IdRange, type Outbox, type OutboxEntry, type OutboxStats } from './contract.js';

const DROP_LOG_INTERVAL_MS = 10_000;

/**
 * A bounded in-memory queue. When full, the oldest pending entry is dropped;
 * drops are counted and logged (GUARDIAN_E_OUTBOX_DROPPED, at most once per 10 s
 * with the count since the last line). Nothing here survives a restart.
 */
export class MemoryOutbox implements Outbox {
  private nextId = 1;
  private pending: OutboxEntry[] = [];
  private head = 0;
  private readonly inFlight = new Map<number, OutboxEntry>();
  private dropped = 0;
  private unreported = 0;
  private droppedSinceLog = 0;
  private lastDropLog = Number.NEGATIVE_INFINITY;
  private readonly listeners: (() => void)[] = [];
  private readonly steps: ClockStepDetector;

  constructor(
    private readonly maxMessages: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    monoNow?: () => number,
  ) {
    this.steps = new ClockStepDetector(monoNow);
  }

  open(): void {
    this.log.warn('outbox: in memory only; messages do not survive a restart');
  }

  private clockStepped(jumpMs: number): void {
    const shift = (e: OutboxEntry): OutboxEntry => ({ ...e, enqueuedAt: e.enqueuedAt + jumpMs });
    this.pending = this.pending.slice(this.head).map(shift);
    this.head = 0;
    for (const [id, entry] of this.inFlight) this.inFlight.set(id, shift(entry));
  }

  sequences(): Map<string, number> {
    return new Map();
  }

  append(message: UpstreamMessage): void {
    const now = this.now();
    const step = this.steps.check(now);
    if (step !== 0) this.clockStepped(step);
    this.pending.push({ id: this.nextId++, message, enqueuedAt: now });
    while (this.pendingCount() + this.inFlight.size > this.maxMessages && this.pendingCount() > 0) {
      this.head += 1;
      this.dropped += 1;
      this.unreported += 1;
      this.droppedSinceLog += 1;
    }
    this.compact();
    if (this.droppedSinceLog > 0 && this.now() - this.lastDropLog >= DROP_LOG_INTERVAL_MS) this.logDrops();
    for (const listener of this.listeners) listener();
  }

  take(max: number, range: IdRange = ALL_IDS): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    const rest: OutboxEntry[] = [];
    for (let i = this.head; i < this.pending.length; i++) {
      const entry = this.pending[i] as OutboxEntry;
      if (out.length < max && entry.id >= range.from && entry.id <= range.to) out.push(entry);
      else rest.push(entry);
    }
    this.pending = rest;
    this.head = 0;
    for (const entry of out) this.inFlight.set(entry.id, entry);
    return out;
  }

  lastId(): number {
    return this.nextId - 1;
  }

  ack(id: number): void {
    this.inFlight.delete(id);
  }

  release(ids: readonly number[]): void {
    const back: OutboxEntry[] = [];
    for (const id of ids) {
      const entry = this.inFlight.get(id);
      if (entry === undefined) continue;
      this.inFlight.delete(id);
      back.push(entry);
    }
    if (back.length === 0) return;
    back.sort((a, b) => a.id - b.id);
    // Merge, so entries released one at a time still come out in id order.
    const rest = this.pending.slice(this.head);
    const merged: OutboxEntry[] = [];
    let i = 0;
    let j = 0;
    while (i < back.length || j < rest.length) {
      const a = back[i];
      const b = rest[j];
      if (b === undefined || (a !== undefined && a.id < b.id)) {
        merged.push(a as OutboxEntry);
        i += 1;
      } else {
        merged.push(b);
        j += 1;
      }
    }
    this.pending = merged;
    this.head = 0;
  }

  stats(): OutboxStats {
    let oldest = this.pending[this.head]?.enqueuedAt;
    for (const entry of this.inFlight.values()) {
      if (oldest === undefined || entry.enqueuedAt < oldest) oldest = entry.enqueuedAt;
    }
    return { pending: this.pendingCount(), staged: 0, inFlight: this.inFlight.size, dropped: this.dropped, oldestEnqueuedAt: oldest };
  }

  /** The memory store always drops the oldest: it is never full. */
  onFullChange(_listener: (full: boolean) => void): void {
    // Nothing to register: see above.
  }

  unreportedDrops(): number {
    return this.unreported;
  }

  markDropsReported(count: number): void {
    this.unreported = Math.max(0, this.unreported - count);
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.droppedSinceLog > 0) this.logDrops();
    const unsent = this.pendingCount() + this.inFlight.size;
    if (unsent > 0) this.log.warn({ unsent, code: 'GUARDIAN_E_SHUTDOWN_TIMEOUT' }, 'in-memory queue closed with unsent messages');
    await Promise.resolve();
  }

  private pendingCount(): number {
    return this.pending.length - this.head;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
  }

  private logDrops(): void {
    const err = new GuardianError('GUARDIAN_E_OUTBOX_DROPPED', `outbox full (${this.maxMessages} messages): dropped ${this.droppedSinceLog} oldest`, {
      dropped: this.droppedSinceLog, droppedTotal: this.dropped, maxMessages: this.maxMessages,
    });
    this.log.warn({ err }, err.message);
    this.droppedSinceLog = 0;
    this.lastDropLog = this.now();
  }
}
