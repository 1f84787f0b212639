/**
 * Serial ports: only `Uart` devices. serialport opens through the native
 * addon of @serialport/bindings-cpp, whose `open` is captured (promisified)
 * when the addon loads. So the guard wraps `process.dlopen` and guards the
 * addon's own `open` as it loads, before anything can capture it; a copy
 * already loaded before the guard is guarded at `LinuxBinding.open`. Fail
 * closed: if either cannot be wrapped, the addon is not loaded (dlopen throws)
 * or the guard does not install (GUARDIAN_E_FIREWALL_HOOK, logged), so no
 * serial port is ever open unguarded.
 */
import { createRequire } from 'node:module';
import { rec, type Fn, type GuardContext } from './context.js';

const ADDON = /[\\/]@serialport[\\/]bindings-cpp[\\/]/;
const LOADED_INDEX = /[\\/]@serialport[\\/]bindings-cpp[\\/]dist[\\/]index\.js$/;

function guardNativeOpen(ctx: GuardContext, exports: Record<string, unknown>, file: string): void {
  const open = exports['open'];
  if (typeof open !== 'function') throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `the serial port addon ${file} has no open() to guard; it is not loaded`, { file });
  try {
    exports['open'] = function guardedNativeOpen(this: unknown, ...args: unknown[]): unknown {
      const path = String(args[0]); // read once; the checked string is what opens
      const callback = args.findLast((a) => typeof a === 'function') as Fn | undefined;
      if (!ctx.policy.allowsSerial(path)) {
        const err = ctx.deny('serial', path, `serial device ${path} is not in the manifest's Uart`, 'handle');
        if (callback === undefined) throw err;
        process.nextTick(callback, err);
        return undefined;
      }
      return (open as Fn).call(this, path, ...args.slice(1));
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
      const path = String(copy['path']);
      if (!ctx.policy.allowsSerial(path)) return Promise.reject(ctx.deny('serial', path, `serial device ${path} is not in the manifest's Uart`));
      return (open as Fn).call(this, { ...copy, path });
    };
  } catch (cause) {
    throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `serialport's LinuxBinding in ${file} was loaded before the guard and cannot be guarded`, { file }, cause);
  }
  if (binding['open'] === open) throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', `serialport's LinuxBinding in ${file} cannot be guarded`, { file });
}

export function installSerialHooks(ctx: GuardContext): void {
  const original: unknown = rec(process)['dlopen'];
  if (typeof original !== 'function') throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', 'process.dlopen is missing: serial ports cannot be guarded', {});
  const dlopen = (original as Fn).bind(process) as (module: { exports: unknown }, file: string, flags?: number) => void;
  const guardedDlopen = function guardedDlopen(module: { exports: unknown }, file: string, ...rest: unknown[]): void {
    dlopen(module, file, ...(rest as [number?]));
    if (ADDON.test(String(file))) {
      try {
        guardNativeOpen(ctx, rec(module.exports), String(file));
      } catch (err) {
        module.exports = {}; // not loaded: nothing can open a port through it
        throw err;
      }
    }
  };
  try {
    rec(process)['dlopen'] = guardedDlopen;
  } catch (cause) {
    throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', 'process.dlopen cannot be guarded: serial ports cannot be guarded', {}, cause);
  }
  if (rec(process)['dlopen'] === original) throw ctx.fault('GUARDIAN_E_FIREWALL_HOOK', 'process.dlopen cannot be guarded: serial ports cannot be guarded', {});
  // copies loaded before the guard (a preloaded module): their addon's open is already captured
  const cache = createRequire(import.meta.url).cache;
  for (const [file, module] of Object.entries(cache)) {
    if (LOADED_INDEX.test(file) && module !== undefined) guardLinuxBinding(ctx, file, module.exports);
  }
}
