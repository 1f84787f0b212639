import type { UpstreamMessage } from '../../core/types.js';

/** One queued message; `id` increases in append order. */
export interface OutboxEntry {
  readonly id: number;
  readonly message: UpstreamMessage;
  readonly enqueuedAt: number;
}

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
  /** Up to `max` entries that are neither acknowledged nor in flight, oldest first. */
  take(max: number): OutboxEntry[];
  ack(id: number): void;
  /** Return in-flight entries to the head of the queue. */
  release(ids: readonly number[]): void;
  stats(): OutboxStats;
  /** Called (synchronously) after each append. */
  onAppend(listener: () => void): void;
  /** Commit what is staged, then release the store. */
  close(): Promise<void>;
}
