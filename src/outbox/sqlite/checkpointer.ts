import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';

/**
 * The SQLite binding the checkpoint thread loads: resolved once, when this
 * module loads, relative to this file (dist/ or the TypeScript sources), and
 * written into the worker's source text below. Nothing the worker is started
 * with can choose which module it loads.
 */
export const CHECKPOINT_SQLITE_MODULE: string = createRequire(import.meta.url).resolve('better-sqlite3');

/**
 * The worker's code (CommonJS, run with `eval`: no separate file to locate from
 * dist/ or from the TypeScript sources under test). It opens its own connection
 * to the outbox and runs a PASSIVE checkpoint whenever it is asked: that copies
 * committed WAL pages into the database file and fsyncs both, without blocking
 * the writer on the main thread.
 *
 * The in-process guard trusts this exact text (TRUSTED_WORKERS), so the text
 * itself must not let whoever starts it run code of their choosing: the module
 * path is pinned in it (it used to come from `workerData.module`, which let any
 * code in the process start this trusted source with its own module), and
 * `workerData` may hold only `{ path }`, a string: anything else ends the
 * thread before the binding is loaded (an 'error' with GUARDIAN_E_FIREWALL_DENIED
 * for whoever started it).
 */
export const CHECKPOINT_WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const keys = workerData !== null && typeof workerData === 'object' ? Object.keys(workerData) : [];
if (keys.length !== 1 || keys[0] !== 'path' || typeof workerData.path !== 'string') {
  const err = new Error('the checkpoint thread takes only { path: string } as workerData');
  err.code = 'GUARDIAN_E_FIREWALL_DENIED';
  throw err;
}
const Database = require(${JSON.stringify(CHECKPOINT_SQLITE_MODULE)});
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 50');
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); parentPort.close(); return; }
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ ok: false, code: String(err.code || ''), message: String(err.message) });
  }
});
`;

export type Reply = { ok: true; busy: number; log: number; checkpointed: number } | { ok: false; code: string; message: string };

/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside
 * the commit that crosses `wal_autocheckpoint` and fsyncs: on an SD card or a
 * virtual disk that is a multi-millisecond stall of everything (measured: p99.9
 * commit 7.6 ms with it, the rest of commits 0.1-1 ms). Here a worker thread
 * checkpoints after `maxCommits` commits or `everyMs`, whichever comes first
 * (each checkpoint copies every page changed since the last one: checkpointing
 * rarely at a low rate writes each page once, not once a second: SD wear).
 * At a low commit rate (fewer than `threadAbove` commits since the last one)
 * the checkpoint runs on the event loop through `here` instead: a few ms every
 * 10 s stall almost nothing then, and an idle gateway does not keep a thread
 * (a V8 isolate, ~8 MB) for it. The thread starts the first time the rate is
 * high; if it cannot run, every checkpoint runs `here`.
 *
 * Under a steady stream of commits a checkpoint on another connection never
 * ends with every frame copied (commits land while it runs), and SQLite starts
 * the WAL file from the beginning only after one did: measured, the WAL grew
 * to 320 MB while 100,000 messages were buffered. So when the thread's
 * checkpoint saw a WAL above `finishAbove` frames, `here` finishes it on the
 * event loop (the writer's own connection, between commits: it copies only
 * the frames added meanwhile), and the next commit restarts the WAL.
 */
export class Checkpointer {
  private worker: Worker | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private commits = 0;
  private lastRun = performance.now();
  private failing = false;
  private threadFailed = false;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    private readonly here: () => Reply,
    private readonly everyMs = 10_000,
    // Each checkpoint's fsyncs stall a concurrent commit for a few ms (the kernel
    // serialises them on the WAL file): at 400 commits/s, one stall every 5 s.
    private readonly maxCommits = 2000,
    private readonly threadAbove = 200,
    private readonly finishAbove = 8192,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), Math.min(1000, this.everyMs));
    this.timer.unref();
  }

  /** Whether the checkpoint thread is running (it starts with the first busy checkpoint). */
  get threaded(): boolean {
    return this.worker !== undefined;
  }

  private startThread(): void {
    const worker = new Worker(CHECKPOINT_WORKER_CODE, { eval: true, workerData: { path: this.path } });
    worker.unref();
    worker.on('message', (reply: Reply) => this.finished(reply));
    worker.on('error', (err) => {
      this.log.warn({ err, code: 'GUARDIAN_E_OUTBOX_WRITE' }, 'outbox checkpoint thread failed: checkpoints run on the main thread from now on');
      this.worker = undefined;
      this.threadFailed = true;
      this.busy = false;
    });
    this.worker = worker;
  }

  /** Something was committed. */
  committed(): void {
    this.commits += 1;
  }

  /** Stop the thread and close its connection (before the main connection closes). */
  async close(): Promise<void> {
    this.stopTimer();
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('close');
    const timeout = setTimeout(() => void worker.terminate(), 2000);
    await exited;
    clearTimeout(timeout);
  }

  private tick(): void {
    if (this.commits === 0 || this.busy) return;
    if (this.commits < this.maxCommits && performance.now() - this.lastRun < this.everyMs) return;
    const busyRate = this.commits >= this.threadAbove;
    this.commits = 0;
    this.lastRun = performance.now();
    if (this.worker === undefined && busyRate && !this.threadFailed) this.startThread();
    if (this.worker === undefined) {
      this.done(this.runHere());
      return;
    }
    this.busy = true;
    this.worker.postMessage('checkpoint');
  }

  private runHere(): Reply {
    try {
      return this.here();
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      return { ok: false, code: typeof e.code === 'string' ? e.code : '', message: String(e.message) };
    }
  }

  private finished(reply: Reply): void {
    this.busy = false;
    if (reply.ok && reply.log > this.finishAbove) this.done(this.runHere());
    else this.done(reply);
  }

  private done(reply: Reply): void {
    this.busy = false;
    if (!reply.ok) {
      this.commits += 1; // try again next time
      if (!this.failing) this.log.warn({ code: reply.code, err: { message: reply.message } }, 'outbox checkpoint failed; retrying (the WAL file grows meanwhile)');
      this.failing = true;
      return;
    }
    if (this.failing) this.log.info({ checkpointed: reply.checkpointed }, 'outbox checkpoints work again');
    this.failing = false;
    if (reply.checkpointed < reply.log) this.commits += 1; // a reader held part of it: finish next time
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
