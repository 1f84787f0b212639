import type { OutboxEntry } from '../contract.js';

/** A stored entry and its payload size in bytes (for the outbox's byte count). */
export interface SizedEntry {
  readonly entry: OutboxEntry;
  readonly bytes: number;
}

/**
 * The newest committed outbox entries, kept in memory so that the live lane is
 * handed out without reading back what was just written (in steady operation
 * every message is taken within a turn or two of its commit).
 *
 * Invariant: every stored entry with an id above `floor` is here, except those
 * `remove`d (acknowledged or dropped). Past `maxBytes` of payload the oldest are
 * evicted and `floor` rises; they stay in the database and are paged from there.
 */
export class TailCache {
  /** Ascending ids, one per slot (kept when the slot is removed, for the binary search). */
  private ids: number[] = [];
  /** `null` marks a removed entry until the head passes it. */
  private slots: (SizedEntry | null)[] = [];
  private head = 0;
  private bytes = 0;
  private floorId = 0;

  constructor(private readonly maxBytes: number) {}

  /** Ids up to this are not cached (read them from the database). */
  get floor(): number {
    return this.floorId;
  }

  /** Forget everything; ids up to `floor` are in the database only. */
  reset(floor: number): void {
    this.ids = [];
    this.slots = [];
    this.head = 0;
    this.bytes = 0;
    this.floorId = floor;
  }

  /** Append a just-committed entry (ids arrive in increasing order). */
  add(item: SizedEntry): void {
    this.ids.push(item.entry.id);
    this.slots.push(item);
    this.bytes += item.bytes;
    while (this.bytes > this.maxBytes && this.head < this.slots.length) {
      const evicted = this.slots[this.head];
      this.head += 1;
      if (evicted === null || evicted === undefined) continue;
      this.bytes -= evicted.bytes;
      this.floorId = evicted.entry.id;
    }
    this.compact();
  }

  /** The entry is gone from the store (acknowledged or dropped). */
  remove(id: number): void {
    if (id <= this.floorId) return;
    const i = this.indexAfter(id - 1);
    const slot = this.slots[i];
    if (slot === null || slot === undefined || slot.entry.id !== id) return;
    this.slots[i] = null;
    this.bytes -= slot.bytes;
    while (this.head < this.slots.length && this.slots[this.head] === null) this.head += 1;
    this.compact();
  }

  /**
   * Up to `max` cached entries with `after < id <= to`, in id order, leaving out
   * those `skip` names; `last` is the highest id looked at (the lane's new cursor).
   */
  scan(after: number, to: number, max: number, skip: (id: number) => boolean): { items: SizedEntry[]; last: number } {
    const items: SizedEntry[] = [];
    let last = after;
    for (let i = this.indexAfter(after); i < this.slots.length && items.length < max; i++) {
      const slot = this.slots[i];
      if (slot === null || slot === undefined) continue;
      if (slot.entry.id > to) break;
      last = slot.entry.id;
      if (!skip(last)) items.push(slot);
    }
    return { items, last };
  }

  /** Index of the first slot (from the head) whose id is above `id`. */
  private indexAfter(id: number): number {
    let lo = this.head;
    let hi = this.slots.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ids[mid] ?? 0) <= id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.ids = this.ids.slice(this.head);
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }
}
