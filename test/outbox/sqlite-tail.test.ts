// The SQLite outbox's in-memory tail (the live lane is served without reading the
// database back) and its deferred acknowledgement commits.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import type { Test } from 'tap';
import type { UpstreamMessage } from '../../src/core/types.js';
import { Checkpointer, type Reply } from '../../src/outbox/sqlite/checkpointer.js';
import { SqliteOutbox } from '../../src/outbox/sqlite/store.js';
import { TailCache } from '../../src/outbox/sqlite/tail-cache.js';
import { captureLogger } from '../fixtures/logs.js';
import { sleep, tmpDir } from '../fixtures/ports.js';

const item = (id: number, bytes = 10) => ({ entry: { id, message: { kind: 'telemetry' as const, payload: '' }, enqueuedAt: 0 }, bytes });
const ids = (items: { entry: { id: number } }[]): number[] => items.map((i) => i.entry.id);
const none = (): boolean => false;

t.test('TailCache: scan in id order past a cursor, skipping removed and skipped ids', async (t) => {
  const cache = new TailCache(1000);
  cache.reset(4);
  for (let id = 5; id <= 12; id++) cache.add(item(id));
  t.same(ids(cache.scan(4, Number.MAX_SAFE_INTEGER, 3, none).items), [5, 6, 7]);
  cache.remove(6);
  cache.remove(3); // below the floor: not cached, ignored
  cache.remove(99); // never added
  t.same(cache.scan(4, 10, 100, (id) => id === 8), { items: [item(5), item(7), item(9), item(10)], last: 10 }, 'bounded by `to`; the cursor moves past skipped ids');
  t.same(ids(cache.scan(9, Number.MAX_SAFE_INTEGER, 100, none).items), [10, 11, 12]);
  t.same(cache.scan(12, Number.MAX_SAFE_INTEGER, 100, none), { items: [], last: 12 }, 'nothing past the end');
  cache.remove(5);
  t.same(ids(cache.scan(0, Number.MAX_SAFE_INTEGER, 100, none).items), [7, 8, 9, 10, 11, 12], 'removing the head moves past it');
});

t.test('TailCache: past its byte bound the oldest are evicted and the floor rises', async (t) => {
  const cache = new TailCache(100);
  cache.reset(0);
  for (let id = 1; id <= 10; id++) cache.add(item(id, 20));
  t.equal(cache.floor, 5, 'five 20-byte entries fit in 100 bytes');
  t.same(ids(cache.scan(0, Number.MAX_SAFE_INTEGER, 100, none).items), [6, 7, 8, 9, 10]);
  cache.remove(7);
  cache.add(item(11, 20));
  t.equal(cache.floor, 5, 'a removed entry frees its bytes');
  for (let id = 12; id <= 5000; id++) cache.add(item(id, 20));
  t.equal(cache.floor, 4995);
  t.same(ids(cache.scan(0, Number.MAX_SAFE_INTEGER, 100, none).items), [4996, 4997, 4998, 4999, 5000], 'still correct after the array was compacted');
});

const options = async (t: Test) => ({ path: join(await tmpDir(t), 'outbox.db'), maxBytes: 1 << 30, maxAgeMs: 0, commitIntervalMs: 0, synchronous: 'normal' as const, log: captureLogger().log });
const msg = (seq: number, size = 100): UpstreamMessage => ({ kind: 'telemetry', device: 'a', seq, payload: JSON.stringify({ seq, pad: 'x'.repeat(size) }) });
const seqsOf = (entries: { message: UpstreamMessage }[]): number[] => entries.map((e) => e.message.seq ?? -1);

t.test('sqlite: a backlog larger than the in-memory tail comes out complete and in order (database, then cache)', async (t) => {
  const box = new SqliteOutbox(await options(t));
  box.open();
  t.teardown(() => box.close());
  const n = 700; // 700 x ~10 KB = ~7 MB, past the 4 MB tail: the oldest are read back from the database
  for (let i = 1; i <= n; i++) box.append(msg(i, 10_000));
  box.flush();
  const boundary = box.lastId();
  for (let i = n + 1; i <= n + 20; i++) box.append(msg(i, 10_000));
  box.flush();
  const backlog = { from: 1, to: boundary };
  const live = { from: boundary + 1, to: Number.MAX_SAFE_INTEGER };
  t.same(seqsOf(box.take(100, live)), Array.from({ length: 20 }, (_, i) => n + 1 + i), 'the live lane is served from the tail');
  const seen: number[] = [];
  let round = 0;
  for (;;) {
    const batch = box.take(37, backlog);
    if (batch.length === 0) break;
    round += 1;
    // Every third batch fails upstream and comes back first; the rest are confirmed.
    if (round % 3 === 0) {
      box.release(batch.map((e) => e.id));
      continue;
    }
    seen.push(...seqsOf(batch));
    for (const e of batch) box.ack(e.id);
  }
  t.same(seen, Array.from({ length: n }, (_, i) => i + 1), 'every backlog message once, in order, across the database/cache floor');
  box.flush();
  t.match(box.stats(), { pending: 0, inFlight: 20 });
});

t.test('sqlite: acknowledgements are committed within a second, apart from new messages', async (t) => {
  const opts = await options(t);
  const box = new SqliteOutbox(opts);
  box.open();
  t.teardown(() => box.close());
  const reader = new Database(opts.path, { readonly: true });
  t.teardown(() => reader.close());
  const stored = (): number => (reader.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
  for (let i = 1; i <= 4; i++) box.append(msg(i));
  box.flush();
  const [a, b] = box.take(2);
  box.ack(a!.id);
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(stored(), 4, 'an acknowledgement alone is not committed at once (a crash now would send it again)');
  t.equal(box.stats().pending, 2, 'but it no longer counts as pending');
  box.append(msg(5));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(stored(), 5, 'the next message is committed at once, without the acknowledgement (one page less)');
  box.ack(b!.id);
  await sleep(1300);
  t.equal(stored(), 3, 'acknowledgements are committed within ACK_COMMIT_MS');
  t.same(seqsOf(box.take(10)), [3, 4, 5]);
});

t.test('sqlite: numbering continues after a restart when every message was acknowledged and deleted', async (t) => {
  const opts = await options(t);
  const first = new SqliteOutbox(opts);
  first.open();
  for (let i = 1; i <= 3; i++) first.append(msg(i));
  first.append({ kind: 'telemetry', device: 'b', seq: 41, payload: '{}' });
  first.flush();
  for (const e of first.take(10)) first.ack(e.id);
  await first.close();
  const second = new SqliteOutbox(opts);
  second.open();
  t.teardown(() => second.close());
  t.equal(second.stats().pending, 0, 'nothing left to send');
  t.same(second.sequences(), new Map([['a', 3], ['b', 41]]), 'the deleted rows left their last numbers behind');
});

t.test('Checkpointer: a thread copies the WAL into the database file at busy rates, the event loop does it at low rates or when the thread cannot run', async (t) => {
  const logs = captureLogger();
  const walDb = async (): Promise<{ path: string; db: Database.Database; here: () => Reply; calls: () => number }> => {
    const path = join(await tmpDir(t), 'c.db');
    const db = new Database(path);
    t.teardown(() => { if (db.open) db.close(); });
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE x (v TEXT)');
    const insert = db.prepare('INSERT INTO x (v) VALUES (?)');
    for (let i = 0; i < 200; i++) insert.run('v'.repeat(1000));
    let n = 0;
    const here = (): Reply => {
      n += 1;
      const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
      return { ok: true, busy: r!.busy, log: r!.log, checkpointed: r!.checkpointed };
    };
    return { path, db, here, calls: () => n };
  };
  const grown = async (path: string, before: number): Promise<number> => {
    const deadline = Date.now() + 5000;
    while (statSync(path).size < before + 150_000 && Date.now() < deadline) await sleep(20);
    return statSync(path).size;
  };

  const busy = await walDb();
  const before = statSync(busy.path).size;
  const cp = new Checkpointer(busy.path, logs.log, busy.here, 100, 5, 3);
  cp.start();
  for (let i = 0; i < 5; i++) cp.committed();
  const size = await grown(busy.path, before);
  t.ok(size > before + 150_000, `busy: the database file grew from ${before} to ${size} bytes`);
  t.ok(cp.threaded, 'on the checkpoint thread');
  t.equal(busy.calls(), 0, 'not on the event loop');
  await cp.close();

  const quiet = await walDb();
  const cp2 = new Checkpointer(quiet.path, logs.log, quiet.here, 100, 1000, 10);
  cp2.start();
  cp2.committed();
  t.ok(await grown(quiet.path, before) > before + 150_000, 'quiet: checkpointed too');
  t.equal(quiet.calls(), 1, 'on the event loop');
  t.notOk(cp2.threaded, 'no thread for an idle gateway');
  await cp2.close();

  const broken = await walDb();
  const cp3 = new Checkpointer(join(await tmpDir(t), 'nope.db'), logs.log, broken.here, 100, 1, 1);
  cp3.start();
  cp3.committed();
  const deadline = Date.now() + 5000;
  while (!logs.lines.some((l) => /checkpoint thread failed/.test(String(l['msg']))) && Date.now() < deadline) await sleep(20);
  t.ok(logs.lines.some((l) => /checkpoint thread failed/.test(String(l['msg']))), 'a thread that cannot open the database says so in the log');
  cp3.committed();
  while (broken.calls() === 0 && Date.now() < deadline) await sleep(20);
  t.equal(broken.calls(), 1, 'and checkpoints run on the event loop from then on');
  await cp3.close();
});

t.test('Checkpointer: under a steady stream of commits the WAL file stays bounded (the event loop finishes what the thread began)', async (t) => {
  const run = async (finishAbove: number): Promise<{ walMB: number; here: number }> => {
    const path = join(await tmpDir(t), 's.db');
    const db = new Database(path);
    t.teardown(() => { if (db.open) db.close(); });
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.pragma('journal_size_limit = 1048576');
    db.exec('CREATE TABLE x (id INTEGER PRIMARY KEY, v TEXT)');
    const insert = db.prepare('INSERT INTO x (v) VALUES (?)');
    const remove = db.prepare('DELETE FROM x WHERE id < ?');
    let here = 0;
    const cp = new Checkpointer(path, captureLogger().log, () => {
      here += 1;
      const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
      return { ok: true, busy: r!.busy, log: r!.log, checkpointed: r!.checkpointed };
    }, 50, 100, 1, finishAbove);
    cp.start();
    const end = Date.now() + 600;
    let id = 0;
    while (Date.now() < end) { // a commit per turn, like the outbox under load
      const info = insert.run('v'.repeat(1000));
      id = Number(info.lastInsertRowid);
      if (id % 50 === 0) remove.run(id - 100);
      cp.committed();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await cp.close();
    return { walMB: statSync(`${path}-wal`).size / 1e6, here };
  };
  const unbounded = await run(Number.POSITIVE_INFINITY);
  const bounded = await run(500);
  t.ok(unbounded.walMB > 10, `without finishing on the event loop the WAL grows (${unbounded.walMB.toFixed(1)} MB)`);
  t.ok(bounded.here > 0, 'the event loop finished checkpoints');
  t.ok(bounded.walMB < unbounded.walMB / 4, `with it the WAL stays bounded (${bounded.walMB.toFixed(1)} MB: what one tick of commits adds)`);
});

t.test('a wall-clock step moves what this run stored, so the age bound keeps measuring real age', async (t) => {
  const day = 86_400_000;
  let wall = Date.UTC(2020, 0, 1); // a Raspberry Pi without RTC, booted with a stale clock
  let mono = 0;
  const logs = captureLogger();
  const opts = { ...(await options(t)), maxAgeMs: 60_000, log: logs.log, now: () => wall, monoNow: () => mono };
  const first = new SqliteOutbox(opts);
  first.open();
  first.append(msg(1));
  first.flush();
  await first.close(); // a restart: message 1 was stored by an earlier run
  const box = new SqliteOutbox(opts);
  box.open();
  t.teardown(() => box.close());
  wall += 5000;
  mono += 5000;
  for (let i = 2; i <= 3; i++) box.append(msg(i));
  box.flush();
  box.append(msg(4)); // staged, not yet committed
  wall += 30 * day; // NTP steps the clock forward by 30 days
  mono += 10;
  box.append(msg(5));
  box.flush();
  t.same(seqsOf(box.take(10)), [2, 3, 4, 5], "this run's messages survive the 60 s age bound: they are seconds old, not 30 days");
  t.ok(logs.lines.some((l) => l['code'] === 'GUARDIAN_E_CLOCK_JUMP' && l['moved'] === 2), 'the move is logged with the clock-jump code');
  t.equal(box.stats().dropped, 1, "the earlier run's message keeps its own clock's time and ages out");
  wall += 61_000; // real time passes (both clocks)
  mono += 61_000;
  box.append(msg(6));
  box.flush();
  t.equal(box.stats().dropped, 5, 'and once they really are older than the bound, they go');
});
