import type { UpstreamMessage } from '../core/types.js';

/** One queued message; `id` increases in append order. */
export interface OutboxEntry {
  readonly id: number;
  readonly message: UpstreamMessage;
  readonly enqueuedAt: number;
}

/** Ids from `from` to `to`, inclusive. */
export interface IdRange {
  readonly from: number;
  readonly to: number;
}

/** A wall-clock step bigger than this between two appends moves the stored timestamps. */
export const CLOCK_STEP_MS = 1000;

/**
 * Notices wall-clock steps between appends (against the monotonic clock). A
 * store moves the enqueue times of what it stored in this run before a step, so
 * the age bound measures real age: without that, a Raspberry Pi with no RTC,
 * booted with a stale clock and stepped forward by NTP, would see the readings
 * it took before the step as days old and drop them. (Entries from before a
 * restart keep their times: they were taken with that run's clock.)
 */
export class ClockStepDetector {
  private wall: number | undefined;
  private mono = 0;

  constructor(private readonly monoNow: () => number = () => performance.now()) {}

  /** The step since the last call in ms (0 when within CLOCK_STEP_MS). */
  check(wallNow: number): number {
    const mono = this.monoNow();
    const step = this.wall === undefined ? 0 : Math.round((wallNow - this.wall) - (mono - this.mono));
    this.wall = wallNow;
    this.mono = mono;
    return Math.abs(step) > CLOCK_STEP_MS ? step : 0;
  }
}

export const ALL_IDS: IdRange = { from: 1, to: Number.MAX_SAFE_INTEGER };

export interface OutboxStats {
  readonly pending: number;
  /** Of `pending`, accepted but not yet committed: they get their ids (above `lastId()`) at the commit. */
  readonly staged: number;
  readonly inFlight: number;
  readonly dropped: number;
  readonly oldestEnqueuedAt: number | undefined;
}

/**
 * The only way data goes upstream (DESIGN.md). Entries are handed out in id
 * order, acknowledged when the upstream confirmed them, or released back (in
 * order, ahead of newer entries) when the link failed before it confirmed.
 * The bounded in-memory queue fills this seam now; the durable SQLite outbox
 * replaces it without touching any adapter.
 */
export interface Outbox {
  /** Open the store (create it, recover what it holds). */
  open(): void;
  /** The last stored sequence number of each device, to continue numbering after a restart. */
  sequences(): Map<string, number>;
  append(message: UpstreamMessage): void;
  /**
   * Up to `max` entries that are neither acknowledged nor in flight, oldest first;
   * with a range, only entries whose id lies in it (the backlog and live lanes).
   */
  take(max: number, range?: IdRange): OutboxEntry[];
  /** The highest id stored so far (0 when none): the boundary between backlog and live data. */
  lastId(): number;
  ack(id: number): void;
  /** Return in-flight entries to the head of the queue. */
  release(ids: readonly number[]): void;
  stats(): OutboxStats;
  /** With the stop-polling policy: told when the outbox becomes full, and when it has room again. */
  onFullChange(listener: (full: boolean) => void): void;
  /** Drops not yet reported upstream (survives restarts where the store does). */
  unreportedDrops(): number;
  /** `count` drops were reported and acknowledged upstream. */
  markDropsReported(count: number): void;
  /** Called (synchronously) after each append. */
  onAppend(listener: () => void): void;
  /** Commit what is staged, then release the store. */
  close(): Promise<void>;
}
