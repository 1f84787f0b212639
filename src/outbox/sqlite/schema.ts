import type Database from 'better-sqlite3';
import type { MessageKind, UpstreamMessage } from '../../core/types.js';
import type { SizedEntry } from './tail-cache.js';

// The SQLite outbox's table layout and statements (store.ts holds the logic).

export interface Row {
  id: number;
  kind: MessageKind;
  device: string | null;
  seq: number | null;
  payload: string;
  bytes: number;
  enqueued_at: number;
}

export interface DroppedRow {
  id: number;
  bytes: number;
  device: string | null;
  seq: number | null;
}

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  device TEXT,
  seq INTEGER,
  payload TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  enqueued_at INTEGER NOT NULL
);
DROP INDEX IF EXISTS outbox_enqueued_at;
CREATE TABLE IF NOT EXISTS sequences (device TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seq_reserved (device TEXT PRIMARY KEY, upto INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** Every statement the outbox runs, prepared once. */
export function prepareStatements(db: Database.Database) {
  return {
    insert: db.prepare('INSERT INTO outbox (id, kind, device, seq, payload, bytes, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    shiftTimes: db.prepare('UPDATE outbox SET enqueued_at = enqueued_at + ? WHERE id > ?'),
    removeRange: db.prepare('DELETE FROM outbox WHERE id BETWEEN ? AND ?'),
    page: db.prepare('SELECT id, kind, device, seq, payload, bytes, enqueued_at FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?'),
    oldest: db.prepare('SELECT enqueued_at AS t FROM outbox ORDER BY id LIMIT 1'),
    dropOldest: db.prepare('DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?) RETURNING id, bytes, device, seq'),
    dropExpired: db.prepare('DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?) AND enqueued_at < ? RETURNING id, bytes, device, seq'),
    countDrops: db.prepare("INSERT INTO counters (name, value) VALUES ('dropped', ?), ('unreported', ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"),
    setCounter: db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;

/** Sorted ids as runs of consecutive ids [from, to] (one range delete each). */
export function idRuns(ids: number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const id of ids.sort((a, b) => a - b)) {
    const last = runs[runs.length - 1];
    if (last !== undefined && id === last[1] + 1) last[1] = id;
    else runs.push([id, id]);
  }
  return runs;
}

/** A stored row as the entry `take` hands out (no device or seq when the row has none). */
export function rowEntry(row: Row): SizedEntry {
  const message: UpstreamMessage = {
    kind: row.kind, payload: row.payload,
    ...(row.device === null ? {} : { device: row.device }),
    ...(row.seq === null ? {} : { seq: row.seq }),
  };
  return { entry: { id: row.id, message, enqueuedAt: row.enqueued_at }, bytes: row.bytes };
}
