/**
 * Native addons and serial ports. `process.dlopen` loads only the addons of
 * Guardian's own dependencies (better-sqlite3, @serialport/bindings-cpp): by
 * real path, and with the content they had when the guard was installed
 * (SHA-256); any other file — a copy of the serialport addon in /tmp, an
 * attacker's own .node — is refused (kind `addon`) and reported.
 *
 * Serial ports: only `Uart` devices. serialport opens through its addon,
 * whose `open` is captured (promisified) when the addon loads. So the guard
 * guards the addon's own `open` as it loads, before anything can capture it;
 * a copy already loaded before the guard is guarded at `LinuxBinding.open`.
 * Fail closed: if either cannot be wrapped, the addon is not loaded (dlopen
 * throws) or the guard does not install (GUARDIAN_E_FIREWALL_HOOK, logged), so
 * no serial port is ever open unguarded through serialport. A device node
 * opened with `fs` is not seen here: DevicePolicy=closed / DeviceAllow= (the
 * systemd drop-in) holds that (README, "Preloaded code, and what the guard
 * cannot hold").
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { rec, show, type Fn, type GuardContext } from './context.js';
import {
  CreateHash, HashDigest, HashUpdate, MapPrototypeGet, MapPrototypeSet, ReaddirSync, ReadFileSync, RealpathSync, ReflectApply,
  RegExpPrototypeExec, StringCtor, lastFunction, listFrom, newMap, pin,
} from './primordials.js';

const ADDON = /[\\/]@serialport[\\/]bindings-cpp[\\/]/;
const LOADED_INDEX = /[\\/]@serialport[\\/]bindings-cpp[\\/]dist[\\/]index\.js$/;

function guardNativeOpen(ctx: GuardContext, exports: Record<string, unknown>, file: string): void {
  const open = exports['open'];
  if (typeof open !== 'function') throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `the serial port addon ${file} has no open() to guard; it is not loaded`, { file });
  try {
    exports['open'] = function guardedNativeOpen(this: unknown, ...args: unknown[]): unknown {
      const path = StringCtor(args[0]); // read once; the checked string is what opens
      const callback = lastFunction(args);
      if (!ctx.policy.allowsSerial(path)) {
        const err = ctx.deny('serial', path, `serial device ${path} is not in the manifest's Uart`, 'handle');
        if (callback === undefined) throw err;
        process.nextTick(callback, err);
        return undefined;
      }
      const rest = listFrom(args);
      rest[0] = path;
      return ReflectApply(open as Fn, this, rest) as unknown;
    };
  } catch (cause) {
    throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `the serial port addon ${file} cannot be guarded (its exports are frozen); it is not loaded`, { file }, cause);
  }
  if (exports['open'] === open) throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `the serial port addon ${file} cannot be guarded; it is not loaded`, { file });
}

function guardLinuxBinding(ctx: GuardContext, file: string, exports: unknown): void {
  const binding = rec(rec(exports)['LinuxBinding']);
  const open = binding['open'];
  if (typeof open !== 'function') throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `serialport's LinuxBinding in ${file} has no open() to guard`, { file });
  try {
    binding['open'] = function guardedOpen(this: unknown, options: unknown): unknown {
      const copy = { ...rec(options) };
      const path = StringCtor(copy['path']);
      if (!ctx.policy.allowsSerial(path)) return Promise.reject(ctx.deny('serial', path, `serial device ${path} is not in the manifest's Uart`));
      return ReflectApply(open as Fn, this, [{ ...copy, path }]);
    };
  } catch (cause) {
    throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `serialport's LinuxBinding in ${file} was loaded before the guard and cannot be guarded`, { file }, cause);
  }
  if (binding['open'] === open) throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `serialport's LinuxBinding in ${file} cannot be guarded`, { file });
}

/** The addons Guardian's own dependencies ship (every .node file under their package directories): real path → SHA-256. */
function ownAddons(): Map<string, string> {
  const require = createRequire(import.meta.url);
  const addons = newMap<string, string>();
  const walk = (dir: string, depth: number): void => {
    for (const entry of ReaddirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && depth < 6 && entry.name !== 'node_modules') walk(path, depth + 1);
      else if (entry.isFile() && entry.name.endsWith('.node')) {
        const hash = CreateHash('sha256');
        HashUpdate(hash, ReadFileSync(path));
        MapPrototypeSet(addons, RealpathSync(path), HashDigest(hash, 'hex'));
      }
    }
  };
  for (const pkg of ['better-sqlite3', '@serialport/bindings-cpp']) {
    let dir: string;
    try {
      dir = dirname(RealpathSync(require.resolve(`${pkg}/package.json`)));
    } catch {
      continue; // not installed: nothing of it can be loaded
    }
    walk(dir, 0);
  }
  return addons;
}

/** The file's content hash now (undefined when it cannot be read). */
function hashOf(path: string): string | undefined {
  try {
    const hash = CreateHash('sha256');
    HashUpdate(hash, ReadFileSync(path));
    return HashDigest(hash, 'hex');
  } catch {
    return undefined; // unreadable: not an addon we know
  }
}

export function installSerialHooks(ctx: GuardContext): void {
  const original: unknown = rec(process)['dlopen'];
  if (typeof original !== 'function') throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', 'process.dlopen is missing: serial ports cannot be guarded', {});
  const addons = ownAddons();
  const refuse = (file: string, why: string): never => {
    throw ctx.deny('addon', file, `loading the native addon ${file}: ${why} (only the addons of Guardian's own dependencies load)`, 'handle');
  };
  const guardedDlopen = function guardedDlopen(module: { exports: unknown }, file: unknown, ...rest: unknown[]): void {
    if (typeof file !== 'string') return refuse(show(file), 'not a path');
    let real: string;
    try {
      real = RealpathSync(file);
    } catch {
      return refuse(file, 'not found');
    }
    const known = MapPrototypeGet(addons, real);
    if (known === undefined) return refuse(file, 'not one of them');
    if (hashOf(real) !== known) return refuse(file, 'its content changed since Guardian started');
    // the checked real path is what loads (a symlink swapped in between changes nothing)
    const args = listFrom(rest);
    const flags = args.length > 0 ? args[0] : undefined;
    ReflectApply(original as Fn, process, flags === undefined ? [module, real] : [module, real, flags]);
    if (RegExpPrototypeExec(ADDON, real) !== null) {
      try {
        guardNativeOpen(ctx, rec(module.exports), real);
      } catch (err) {
        module.exports = {}; // not loaded: nothing can open a port through it
        throw err;
      }
    }
  };
  try {
    pin(process, 'dlopen', guardedDlopen);
  } catch (cause) {
    throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', 'process.dlopen cannot be guarded: serial ports cannot be guarded', {}, cause);
  }
  // copies loaded before the guard (a preloaded module): their addon's open is already captured
  const cache = createRequire(import.meta.url).cache;
  for (const [file, module] of Object.entries(cache)) {
    if (LOADED_INDEX.test(file) && module !== undefined) guardLinuxBinding(ctx, file, module.exports);
  }
}
