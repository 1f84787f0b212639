import type { UpstreamMessage } from '../../core/types.js';

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

export const ALL_IDS: IdRange = { from: 1, to: Number.MAX_SAFE_INTEGER };

export interface OutboxStats {
  readonly pending: number;
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
