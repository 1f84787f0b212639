// One contract suite for the Outbox interface, run against every store.
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import type { UpstreamMessage } from '../../src/core/types.js';
import { MemoryOutbox } from '../../src/outbox/memory.js';
import type { Outbox } from '../../src/outbox/contract.js';
import { SqliteOutbox } from '../../src/outbox/sqlite/store.js';
import { captureLogger } from '../fixtures/logs.js';
import { tmpDir } from '../fixtures/ports.js';
import { mountTmpfs } from '../fixtures/tmpfs.js';

type Factory = (t: Test) => Promise<Outbox>;

const stores: Record<string, Factory> = {
  memory: async () => new MemoryOutbox(1000, captureLogger().log),
  sqlite: async (t) => new SqliteOutbox({
    path: join(await tmpDir(t), 'state', 'outbox.db'), maxBytes: 1 << 20, maxAgeMs: 0, commitIntervalMs: 0, synchronous: 'normal', log: captureLogger().log,
  }),
};

const msg = (device: string, seq: number): UpstreamMessage => ({ kind: 'telemetry', device, seq, payload: JSON.stringify({ seq }) });
const seqs = (entries: { message: UpstreamMessage }[]): (number | undefined)[] => entries.map((e) => e.message.seq);
/** Appends become visible after the store commits (the end of this turn for SQLite). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

for (const [name, make] of Object.entries(stores)) {
  t.test(`${name} outbox contract`, async (t) => {
    t.test('append, take in order, ack', async (t) => {
      const box = await make(t);
      box.open();
      t.teardown(() => box.close());
      let appended = 0;
      box.onAppend(() => { appended += 1; });
      for (let i = 1; i <= 5; i++) box.append(msg('a', i));
      await turn();
      t.ok(appended > 0, 'onAppend listeners are told');
      t.same(seqs(box.take(3)), [1, 2, 3]);
      t.same(seqs(box.take(10)), [4, 5]);
      t.same(box.take(10), [], 'in-flight entries are not handed out twice');
      t.match(box.stats(), { pending: 0, inFlight: 5, dropped: 0 });
    });

    t.test('acknowledged entries are gone; released ones come back first, in id order', async (t) => {
      const box = await make(t);
      box.open();
      t.teardown(() => box.close());
      for (let i = 1; i <= 6; i++) box.append(msg('a', i));
      await turn();
      const taken = box.take(4);
      box.ack(taken[1]!.id);
      box.release([taken[3]!.id]);
      box.release([taken[0]!.id]);
      box.release([taken[2]!.id]);
      t.same(seqs(box.take(10)), [1, 3, 4, 5, 6]);
      t.match(box.stats(), { pending: 0, inFlight: 5 });
    });

    t.test('lanes: take within an id range; lastId is the boundary', async (t) => {
      const box = await make(t);
      box.open();
      t.teardown(() => box.close());
      t.equal(box.lastId(), 0);
      for (let i = 1; i <= 4; i++) box.append(msg('a', i));
      await turn();
      const boundary = box.lastId();
      for (let i = 5; i <= 7; i++) box.append(msg('a', i));
      await turn();
      t.equal(box.lastId(), boundary + 3);
      const live = { from: boundary + 1, to: Number.MAX_SAFE_INTEGER };
      const backlog = { from: 1, to: boundary };
      t.same(seqs(box.take(2, live)), [5, 6], 'live lane first');
      const old = box.take(3, backlog);
      t.same(seqs(old), [1, 2, 3]);
      box.release([old[0]!.id]);
      t.same(seqs(box.take(10, live)), [7]);
      t.same(seqs(box.take(10, backlog)), [1, 4], 'a released backlog entry comes back in its lane, in order');
      t.same(box.take(10), []);
    });

    t.test('stats report depth and the oldest entry', async (t) => {
      const box = await make(t);
      box.open();
      t.teardown(() => box.close());
      t.match(box.stats(), { pending: 0, inFlight: 0, oldestEnqueuedAt: undefined });
      const before = Date.now();
      box.append(msg('a', 1));
      box.append(msg('b', 1));
      await turn();
      const s = box.stats();
      t.equal(s.pending, 2);
      t.ok(s.oldestEnqueuedAt !== undefined && s.oldestEnqueuedAt >= before);
    });
  });
}

t.test('sqlite: what was stored survives a restart; acknowledged messages do not come back', async (t) => {
  const dir = await tmpDir(t);
  const options = { path: join(dir, 'outbox.db'), maxBytes: 1 << 20, maxAgeMs: 0, commitIntervalMs: 0, synchronous: 'normal' as const, log: captureLogger().log };
  const first = new SqliteOutbox(options);
  first.open();
  for (let i = 1; i <= 4; i++) first.append(msg('a', i));
  first.append(msg('b', 7));
  await turn();
  const taken = first.take(3);
  first.ack(taken[0]!.id);
  first.ack(taken[1]!.id);
  await first.close(); // entry 3 was in flight, 4 and b/7 pending
  const second = new SqliteOutbox(options);
  second.open();
  t.teardown(() => second.close());
  t.same(seqs(second.take(10)), [3, 4, 7], 'in-flight and pending entries are pending again, in order');
  t.same(second.sequences(), new Map([['a', 4], ['b', 7]]), 'each device continues from its last stored number');
});

t.test('sqlite: nothing is handed out before it is committed', async (t) => {
  const box = new SqliteOutbox({ path: join(await tmpDir(t), 'o.db'), maxBytes: 1 << 20, maxAgeMs: 0, commitIntervalMs: 200, synchronous: 'normal', log: captureLogger().log });
  box.open();
  t.teardown(() => box.close());
  box.append(msg('a', 1));
  t.same(box.take(10), [], 'staged, not yet durable');
  t.match(box.stats(), { pending: 1, staged: 1 }, 'counted as pending and as staged');
  t.equal(box.lastId(), 0, 'a staged entry has no id yet (the forwarder counts it as live, not backlog)');
  box.flush();
  t.match(box.stats(), { pending: 1, staged: 0 });
  t.same(seqs(box.take(10)), [1]);
});

t.test('sqlite: bounds by bytes and by age drop the oldest, count the drops durably, and log them', async (t) => {
  const logs = captureLogger();
  let now = 1_000_000;
  const path = join(await tmpDir(t), 'o.db');
  const box = new SqliteOutbox({ path, maxBytes: 1000, maxAgeMs: 60_000, commitIntervalMs: 0, synchronous: 'normal', log: logs.log, now: () => now, monoNow: () => now });
  box.open();
  const big = (seq: number): UpstreamMessage => ({ kind: 'telemetry', device: 'a', seq, payload: 'x'.repeat(100) });
  for (let i = 1; i <= 15; i++) box.append(big(i));
  box.flush();
  t.ok(box.storedBytes() <= 1000, `stored ${box.storedBytes()} bytes within the 1000-byte bound`);
  const kept = seqs(box.take(100));
  t.equal(kept[kept.length - 1], 15, 'the newest survive');
  t.equal(kept[0], 16 - kept.length, 'the oldest went first');
  const droppedByBytes = box.stats().dropped;
  t.equal(droppedByBytes, 15 - kept.length);
  t.match(logs.withCode('GUARDIAN_E_OUTBOX_DROPPED')[0], { err: { context: { dropped: droppedByBytes } } });
  box.release(kept.map((_, i) => i)); // nothing with those ids in flight: a no-op
  now += 61_000;
  box.append(big(16));
  box.flush();
  t.same(seqs(box.take(100)), [16], 'everything older than maxAgeMs is dropped');
  await box.close();
  const reopened = new SqliteOutbox({ path, maxBytes: 1000, maxAgeMs: 60_000, commitIntervalMs: 0, synchronous: 'normal', log: logs.log, now: () => now, monoNow: () => now });
  reopened.open();
  t.teardown(() => reopened.close());
  t.equal(reopened.stats().dropped, 15, 'the drop count survives a restart');
});

t.test('sqlite: a full state disk is a clear error, nothing is lost or corrupted, and writes resume when space returns', async (t) => {
  const disk = await mountTmpfs(t, 2048);
  const logs = captureLogger();
  const options = { path: join(disk.path, 'outbox.db'), maxBytes: 1 << 30, maxAgeMs: 0, commitIntervalMs: 0, synchronous: 'normal' as const, log: logs.log };
  const box = new SqliteOutbox(options);
  box.open();
  for (let i = 1; i <= 10; i++) box.append(msg('a', i));
  box.flush();
  disk.fill();
  const payload = 'y'.repeat(2000);
  for (let i = 11; i <= 200; i++) box.append({ kind: 'telemetry', device: 'a', seq: i, payload });
  t.throws(() => box.flush(), { code: 'GUARDIAN_E_STATE_DISK_FULL' }, 'the commit fails with a clear code');
  t.equal(box.stats().pending, 200, 'the uncommitted readings are still held');
  t.same(seqs(box.take(1000)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'only committed messages are handed out');
  disk.free();
  box.flush();
  t.same(seqs(box.take(1000)), Array.from({ length: 190 }, (_, i) => i + 11), 'the held readings are committed once space returns');
  await box.close();
  const again = new SqliteOutbox(options);
  again.open();
  t.teardown(() => again.close());
  t.equal(again.stats().pending, 200, 'after a restart every message is there: no corruption');
  t.same(again.sequences(), new Map([['a', 200]]));
});
