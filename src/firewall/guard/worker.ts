/**
 * Worker threads: only the sources Guardian itself starts. A worker has its
 * own copy of every module and binding, none of them guarded, so an untrusted
 * one would be a way around everything else.
 */
import workerThreads from 'node:worker_threads';
import { rec, type GuardContext } from './context.js';

export function installWorkerHook(ctx: GuardContext): void {
  const Worker = workerThreads.Worker;
  class GuardedWorker extends Worker {
    constructor(source: string | URL, opts?: workerThreads.WorkerOptions) {
      const key = source instanceof URL ? source.href : String(source);
      if (!ctx.trust.workers.has(key)) {
        throw ctx.deny('worker', key.length > 80 ? `${key.slice(0, 77)}...` : key, 'a worker thread Guardian does not start itself (workers are not guarded inside)');
      }
      // what was checked is what runs: a fresh URL or the string, not the caller's object (a getter could change)
      super(source instanceof URL ? new URL(key) : key, opts);
    }
  }
  rec(workerThreads)['Worker'] = GuardedWorker;
}
