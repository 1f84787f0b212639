import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';

export interface OutboxStatus {
  readonly messages: number;
  readonly bytes: number;
  readonly oldestEnqueuedAt: number | undefined;
  readonly dropped: number;
}

/** Read an outbox's figures without taking part (for `guardian status` while the daemon runs). */
export function readOutboxStatus(path: string): OutboxStatus | undefined {
  if (!existsSync(path)) return undefined;
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'SQLITE_CANTOPEN') return undefined;
    throw err;
  }
  try {
    const row = db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b, min(enqueued_at) AS t FROM outbox').get() as { n: number; b: number; t: number | null };
    const dropped = db.prepare("SELECT value FROM counters WHERE name = 'dropped'").get() as { value: number } | undefined;
    return { messages: row.n, bytes: row.b, oldestEnqueuedAt: row.t ?? undefined, dropped: dropped?.value ?? 0 };
  } finally {
    db.close();
  }
}
