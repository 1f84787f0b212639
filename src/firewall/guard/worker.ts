/**
 * Worker threads: only the sources Guardian itself starts. A worker has its
 * own copy of every module and binding, none of them guarded, so an untrusted
 * one would be a way around everything else.
 */
import workerThreads from 'node:worker_threads';
import { rec, type GuardContext } from './context.js';

/**
 * What a trusted source may be started with. `execArgv` (a `--require` runs a module
 * inside the thread before the trusted code), `env`, `argv`, `preload`-like options
 * would let a caller run its own code next to the trusted source.
 */
const TRUSTED_OPTIONS = new Set(['eval', 'workerData', 'name', 'resourceLimits']);

export function installWorkerHook(ctx: GuardContext): void {
  const Worker = workerThreads.Worker;
  class GuardedWorker extends Worker {
    constructor(source: string | URL, opts?: workerThreads.WorkerOptions) {
      const key = source instanceof URL ? source.href : String(source);
      if (!ctx.trust.workers.has(key)) {
        throw ctx.deny('worker', key.length > 80 ? `${key.slice(0, 77)}...` : key, 'a worker thread Guardian does not start itself (workers are not guarded inside)');
      }
      // only the options a trusted source needs, each read once into a fresh object
      const given = (opts ?? {}) as Record<string, unknown>;
      const extra = Object.keys(given).filter((k) => !TRUSTED_OPTIONS.has(k) && given[k] !== undefined);
      if (extra.length > 0) {
        throw ctx.deny('worker', `options ${extra.join(', ')}`, `a trusted worker started with ${extra.join(', ')} (only ${[...TRUSTED_OPTIONS].join(', ')} are allowed: execArgv or env could run other code in the thread)`);
      }
      const copy: Record<string, unknown> = {};
      for (const k of TRUSTED_OPTIONS) if (given[k] !== undefined) copy[k] = given[k];
      // what was checked is what runs: a fresh URL or the string, not the caller's object (a getter could change)
      super(source instanceof URL ? new URL(key) : key, copy);
    }
  }
  rec(workerThreads)['Worker'] = GuardedWorker;
}
