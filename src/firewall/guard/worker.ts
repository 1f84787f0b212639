/**
 * Worker threads: only the sources Guardian itself starts. A worker has its
 * own copy of every module and binding, none of them guarded, so an untrusted
 * one would be a way around everything else.
 *
 * The guarded `Worker` is a plain function, not a subclass (a subclass's
 * [[Prototype]] is the original class): its prototype is Function.prototype,
 * it constructs the original through the captured Reflect.construct, and
 * `Worker.prototype.constructor` (what every instance answers to
 * `.constructor`) is pinned to it. Node's own worker module keeps the original
 * in its closure; nothing public hands it out.
 */
import workerThreads from 'node:worker_threads';
import { rec, trusts, type GuardContext } from './context.js';
import { ReflectConstruct, ReflectOwnKeys, SetPrototypeHas, StringCtor, StringPrototypeSlice, URLCtor, list, listPush, pin, record } from './primordials.js';

/**
 * What a trusted source may be started with. `execArgv` (a `--require` runs a module
 * inside the thread before the trusted code), `env`, `argv`, `preload`-like options
 * would let a caller run its own code next to the trusted source.
 */
const TRUSTED_OPTIONS: readonly string[] = ['eval', 'workerData', 'name', 'resourceLimits'];

export function installWorkerHook(ctx: GuardContext): void {
  const OriginalWorker = workerThreads.Worker;
  const allowed = new Set(TRUSTED_OPTIONS);
  const GuardedWorker = function Worker(this: unknown, source: unknown, opts?: unknown): object {
    if (new.target === undefined) throw new TypeError("Class constructor Worker cannot be invoked without 'new'");
    const key = source instanceof URLCtor ? StringCtor((source).href) : StringCtor(source);
    if (!trusts(ctx.trust.workers, key)) {
      throw ctx.deny('worker', key.length > 80 ? `${StringPrototypeSlice(key, 0, 77)}...` : key, 'a worker thread Guardian does not start itself (workers are not guarded inside)');
    }
    // only the options a trusted source needs, each read once into a fresh object
    const given = typeof opts === 'object' && opts !== null ? rec(opts) : record();
    const copy = record();
    const extra = list<string>();
    const keys = ReflectOwnKeys(given);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      const value = given[k as string];
      if (value === undefined) continue;
      if (typeof k === 'string' && SetPrototypeHas(allowed, k)) copy[k] = value;
      else listPush(extra, StringCtor(k));
    }
    if (extra.length > 0) {
      const names = Array.from(extra).join(', ');
      throw ctx.deny('worker', `options ${names}`, `a trusted worker started with ${names} (only ${TRUSTED_OPTIONS.join(', ')} are allowed: execArgv or env could run other code in the thread)`);
    }
    // what was checked is what runs: a fresh URL or the string, not the caller's object (a getter could change)
    return ReflectConstruct(OriginalWorker, [source instanceof URLCtor ? new URLCtor(key) : key, copy], new.target === GuardedWorker ? OriginalWorker : new.target) as object;
  };
  GuardedWorker.prototype = OriginalWorker.prototype as unknown;
  pin(OriginalWorker.prototype, 'constructor', GuardedWorker);
  pin(workerThreads, 'Worker', GuardedWorker);
}
