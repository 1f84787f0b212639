import { readFileSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { GuardianError } from '../../core/errors.js';

/**
 * Sequence numbers a device may use beyond its durable reservation before a new
 * one is made durable: one fsynced commit per this many messages of a device.
 * After a power loss the device's numbering continues above the reservation
 * (a gap of at most this many).
 */
export const SEQ_RESERVE = 1000;

const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

/** The kernel's boot id (a new one every boot), or undefined where there is none. */
export function currentBootId(file = BOOT_ID_FILE): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw err;
  }
}

interface SeqRow { device?: string | null; seq?: number | null }

/**
 * Per-device sequence numbers that are never reused, even after a power loss.
 *
 * With `synchronous = NORMAL` the WAL is fsynced only at checkpoints, so a power
 * loss can roll the outbox back by several seconds: messages already published
 * and their sequence numbers disappear, and numbering them again would give a
 * consumer that drops duplicates by (device, seq) new readings under numbers it
 * has already seen. So each device's numbers are *reserved* ahead in blocks of
 * `reserve`, and the commit that first uses a number beyond the reservation is
 * made with `synchronous = FULL` (an fsync of the WAL: everything committed so
 * far is durable with it). A published number is therefore always at or below a
 * durable reservation. At open:
 * - same boot id as the last run (a process crash or restart: the page cache
 *   kept every commit): numbering continues from the last committed number;
 * - another boot (or no boot id): from the highest of the committed number and
 *   the reservation, skipping what a lost WAL tail may have used;
 * and the result is committed with FULL, so it is durable before anything new
 * is numbered. A clean close drops the reservations (with FULL, after the last
 * commit): a reboot after a clean stop continues without a gap.
 */
export class SequenceLedger {
  private reserved = new Map<string, number>();
  private readonly statements;

  constructor(
    private readonly db: Database.Database,
    private readonly log: Logger,
    /** 'full' commits every transaction with an fsync already: no reservations needed. */
    private readonly synchronous: 'normal' | 'full',
    private readonly reserve = SEQ_RESERVE,
  ) {
    this.statements = {
      committed: db.prepare(`SELECT device, max(seq) AS seq FROM (
        SELECT device, seq FROM sequences UNION ALL SELECT device, max(seq) FROM outbox WHERE device IS NOT NULL AND seq IS NOT NULL GROUP BY device
      ) GROUP BY device`),
      keep: db.prepare('INSERT INTO sequences (device, seq) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET seq = max(seq, excluded.seq)'),
      reservations: db.prepare('SELECT device, upto FROM seq_reserved'),
      reserve: db.prepare('INSERT INTO seq_reserved (device, upto) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET upto = max(upto, excluded.upto)'),
      clearReservations: db.prepare('DELETE FROM seq_reserved'),
      getMeta: db.prepare('SELECT value FROM meta WHERE name = ?'),
      setMeta: db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value'),
    };
  }

  /** Recover after open (see the class comment); `bootId` undefined = unknown, treated as a new boot. */
  open(bootId: string | undefined): void {
    const committed = this.committed();
    this.reserved = new Map((this.statements.reservations.all() as { device: string; upto: number }[]).map((r) => [r.device, r.upto]));
    const lastBoot = (this.statements.getMeta.get('bootId') as { value: string } | undefined)?.value;
    const sameBoot = bootId !== undefined && bootId === lastBoot;
    const skipped: Record<string, { from: number; to: number }> = {};
    if (!sameBoot) {
      for (const [device, upto] of this.reserved) {
        const last = committed.get(device) ?? 0;
        if (upto > last) skipped[device] = { from: last, to: upto };
      }
    }
    this.durably(() => {
      this.statements.setMeta.run('bootId', bootId ?? '');
      for (const [device, { to }] of Object.entries(skipped)) this.statements.keep.run(device, to);
    });
    if (Object.keys(skipped).length > 0) {
      const err = new GuardianError('GUARDIAN_E_OUTBOX_SEQ_SKIPPED', 'the outbox may have lost its last commits (a reboot without a clean stop: power loss, kernel crash): sequence numbers continue above what was reserved, never reusing one a consumer may have seen', { devices: Object.keys(skipped).join(','), lastBoot: lastBoot ?? 'none' });
      this.log.warn({ err, code: err.code, devices: skipped }, err.message);
    }
  }

  /** The last committed (or skipped-to) sequence number of every device. */
  committed(): Map<string, number> {
    const rows = this.statements.committed.all() as { device: string; seq: number }[];
    return new Map(rows.map((r) => [r.device, r.seq]));
  }

  /**
   * Commit `fn` in one transaction with these messages' reservations; when a
   * message passes its device's durable reservation, the transaction extends it
   * and is committed with an fsync (FULL), before any of them can be published.
   */
  commit(messages: readonly SeqRow[], fn: () => void): void {
    const extend = new Map<string, number>();
    if (this.synchronous === 'normal') {
      for (const { device, seq } of messages) {
        if (typeof device !== 'string' || typeof seq !== 'number') continue;
        if (seq > Math.max(this.reserved.get(device) ?? 0, extend.get(device) ?? 0)) extend.set(device, seq + this.reserve);
      }
    }
    const tx = (): void => {
      fn();
      for (const [device, upto] of extend) this.statements.reserve.run(device, upto);
    };
    if (extend.size === 0) this.db.transaction(tx)();
    else this.durably(tx);
    for (const [device, upto] of extend) this.reserved.set(device, upto); // only once durable
  }

  /** Inside a commit that deletes rows: record the highest sequence number per device among them. */
  keep(rows: readonly SeqRow[]): void {
    const last = new Map<string, number>();
    for (const { device, seq } of rows) {
      if (device !== undefined && device !== null && seq !== undefined && seq !== null) last.set(device, Math.max(seq, last.get(device) ?? seq));
    }
    for (const [device, seq] of last) this.statements.keep.run(device, seq);
  }

  /** After the last commit of a clean stop: nothing can be lost now, so nothing needs skipping at the next boot. */
  closeCleanly(): void {
    this.durably(() => this.statements.clearReservations.run());
    this.reserved.clear();
  }

  /** Run `fn` in a transaction committed with an fsync of the WAL (and everything before it). */
  durably(fn: () => void): void {
    if (this.synchronous === 'full') {
      this.db.transaction(fn)();
      return;
    }
    this.db.pragma('synchronous = FULL');
    try {
      this.db.transaction(fn)();
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }
}
