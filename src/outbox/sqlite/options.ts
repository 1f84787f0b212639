import type { Logger } from 'pino';

// The SQLite outbox's options and tuning constants (store.ts holds the logic).

export interface SqliteOutboxOptions {
  /** The database file (in the state directory). */
  readonly path: string;
  /** Bound on stored payload bytes; past it the oldest messages are dropped. */
  readonly maxBytes: number;
  /** Messages older than this are dropped (0 = no age bound). */
  readonly maxAgeMs: number;
  /**
   * 0 = commit at the end of the event-loop turn in which messages were appended
   * (a process crash loses nothing that was polled more than a turn ago);
   * N = commit at most every N ms (fewer, larger writes; a crash loses up to N ms).
   */
  readonly commitIntervalMs: number;
  /**
   * At `maxBytes`: `drop-oldest` drops the oldest messages; `stop-polling` keeps
   * everything and reports the outbox full (polling pauses) until it drains below 90 %.
   */
  readonly policy?: 'drop-oldest' | 'stop-polling';
  /**
   * `normal`: durable across process crashes, a power loss loses the commits since the last
   * checkpoint (sequence numbers are never reused: see SequenceLedger); `full`: fsync every
   * commit, durable across power loss.
   */
  readonly synchronous: 'normal' | 'full';
  /** The kernel's boot id (default: read from /proc); tests simulate a reboot with another. */
  readonly bootId?: string | undefined;
  /** Sequence numbers reserved per fsynced commit (default SEQ_RESERVE). */
  readonly seqReserve?: number;
  readonly log: Logger;
  readonly now?: () => number;
  /** The monotonic clock (tests move it with `now` to age messages without a clock step). */
  readonly monoNow?: () => number;
}

export const AGE_SWEEP_MS = 1000;

/**
 * Acknowledgements alone are committed at most this often (they also go with
 * the next commit of new messages). One lost with a crash only means the message
 * is sent once more after the restart (at-least-once; `seq` tells duplicates).
 */
export const ACK_COMMIT_MS = 1000;

/**
 * Acknowledgements that go with the next commit of new messages even before
 * ACK_COMMIT_MS: at high rates acks are deleted in small steps with the inserts
 * (a 1,000-row delete is a 2-4 ms commit that every message then waits behind).
 */
export const MAX_PENDING_ACKS = 100;

/** Payload bytes of recently committed messages kept in memory for the live lane. */
export const TAIL_CACHE_BYTES = 4 << 20;

/** Rows deleted per statement by the age sweep. */
export const EXPIRE_BATCH = 500;

/** Messages held in memory while commits fail (disk full) before the oldest are dropped. */
export const MAX_STAGED = 100_000;
