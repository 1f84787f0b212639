import type Database from 'better-sqlite3';
import { GuardianError } from '../../core/errors.js';
import { EXPIRE_BATCH } from './options.js';
import type { DroppedRow, Statements } from './schema.js';
import type { SequenceLedger } from './sequence-ledger.js';

// The SQLite outbox's bounds (age and bytes) and its storage errors (store.ts holds the logic).

/** What one bounds check may drop: `cutoff` set for an age sweep, `maxBytes` set when the byte bound drops. */
export interface BoundsCheck {
  /** Messages enqueued before this are expired (undefined: no age sweep this time). */
  readonly cutoff: number | undefined;
  /** The byte bound to drop the oldest down to (undefined: `stop-polling` keeps everything). */
  readonly maxBytes: number | undefined;
  /** Stored payload bytes and rows before this check. */
  readonly bytes: number;
  readonly rows: number;
}

/**
 * Delete, in one transaction, the expired messages (oldest first by id, the order they
 * were stored in, stopping at the first one young enough: no index on enqueued_at to
 * write with every commit) and then the oldest until the bytes fit; count the drops
 * and keep the dropped messages' sequence numbers. Returns the dropped rows.
 */
export function dropOverBounds(db: Database.Database, s: Statements, ledger: SequenceLedger, check: BoundsCheck): DroppedRow[] {
  const dropped: DroppedRow[] = [];
  db.transaction(() => {
    const { cutoff, maxBytes } = check;
    if (cutoff !== undefined) {
      const head = s.oldest.get() as { t: number } | undefined;
      for (let more = head !== undefined && head.t < cutoff; more;) {
        const batch = s.dropExpired.all(EXPIRE_BATCH, cutoff) as DroppedRow[];
        dropped.push(...batch);
        more = batch.length === EXPIRE_BATCH;
      }
    }
    while (maxBytes !== undefined && check.bytes - dropped.reduce((n, r) => n + r.bytes, 0) > maxBytes) {
      const batch = s.dropOldest.all(Math.max(1, Math.ceil(check.rows / 100))) as DroppedRow[];
      if (batch.length === 0) break;
      dropped.push(...batch);
    }
    if (dropped.length > 0) s.countDrops.run(dropped.length, dropped.length);
    ledger.keep(dropped);
  })();
  return dropped;
}

/** A failed write to the outbox: GUARDIAN_E_STATE_DISK_FULL when the disk is full, GUARDIAN_E_OUTBOX_WRITE otherwise. */
export function storageError(path: string, err: unknown): GuardianError {
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_WRITE' || code === 'SQLITE_IOERR') {
    return new GuardianError('GUARDIAN_E_STATE_DISK_FULL', `cannot write the outbox ${path}: ${(err as Error).message}`, { path }, { cause: err });
  }
  return new GuardianError('GUARDIAN_E_OUTBOX_WRITE', `cannot write the outbox ${path}: ${(err as Error).message}`, { path }, { cause: err });
}
