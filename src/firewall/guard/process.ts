/**
 * Child processes, guarded at the native spawn (process_wrap's
 * `Process.prototype.spawn`, under spawn/exec/execFile/fork, and
 * `spawn_sync.spawn`, under the sync forms): only the executables Guardian
 * runs itself, by absolute path, with a pinned environment (TPM2TOOLS_TCTI
 * and NOTIFY_SOCKET, nothing else: no LD_PRELOAD, no NODE_OPTIONS) and with
 * TCTI strings (`TPM2TOOLS_TCTI`, `--tcti`, `-T`) from the allow-list only.
 * Also `process.binding` of the handle modules is refused from here on.
 */
import type { GuardianError } from '../../core/errors.js';
import { rec, trusts, type Fn, type GuardContext, type Trust } from './context.js';
import {
  ArrayIsArray, MapPrototypeGet, ReflectApply, ReflectOwnKeys, RegExpPrototypeExec, StringCtor, StringPrototypeEndsWith, StringPrototypeIndexOf,
  StringPrototypeSlice, StringPrototypeStartsWith, list, listFrom, listIncludes, listPush, newSet, pin, record, type List,
} from './primordials.js';

/** Names `process.binding` gives no one once the guard is armed: the handles under net, dgram, dns, child_process and the inspector. */
export const FORBIDDEN_BINDINGS: ReadonlySet<string> = newSet(listFrom(['tcp_wrap', 'udp_wrap', 'pipe_wrap', 'stream_wrap', 'tls_wrap', 'js_stream', 'cares_wrap', 'process_wrap', 'spawn_sync', 'tty_wrap', 'inspector']));

const LONG = /^--([^=]*)(?:=(.*))?$/s;
const SHORT = /^-[^-]*?T(.*)$/s;

function tctiValues(args: List<string>): List<string> {
  const values = list<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const long = RegExpPrototypeExec(LONG, arg);
    if (long !== null) {
      const name = long[1] ?? '';
      if (name !== '' && StringPrototypeStartsWith('tcti', name)) listPush(values, long[2] ?? args[++i] ?? '');
      continue;
    }
    const short = RegExpPrototypeExec(SHORT, arg);
    if (short !== null) listPush(values, short[1] !== '' ? short[1] ?? '' : args[++i] ?? '');
  }
  return values;
}

/** The TCTI values an argument list names: `--tcti=X`, `--tcti X` (and getopt's prefixes `--tc…`), `-T X`, `-TX`, `-xT X`. */
export function tctiArguments(args: readonly string[]): string[] {
  return Array.from(tctiValues(listFrom(args)));
}

const PINNED_ENV: ReadonlySet<string> = newSet(listFrom(['TPM2TOOLS_TCTI', 'NOTIFY_SOCKET']));

function keyOf(pair: string): string {
  const eq = StringPrototypeIndexOf(pair, '=');
  return eq < 0 ? pair : StringPrototypeSlice(pair, 0, eq);
}

function pinPairs(envPairs: List<string>): { kept: List<string>; dropped: List<string> } {
  const kept = list<string>();
  const dropped = list<string>();
  for (let i = 0; i < envPairs.length; i++) {
    const pair = envPairs[i] as string;
    const key = keyOf(pair);
    if (trusts(PINNED_ENV, key)) listPush(kept, pair);
    else listPush(dropped, key);
  }
  return { kept, dropped };
}

/** The environment a trusted program gets: only TPM2TOOLS_TCTI and NOTIFY_SOCKET; the rest is dropped (and reported). */
export function pinEnv(envPairs: readonly string[]): { kept: string[]; dropped: string[] } {
  const { kept, dropped } = pinPairs(listFrom(envPairs));
  return { kept: Array.from(kept), dropped: Array.from(dropped) };
}

/**
 * What systemd-notify may be given: the messages Guardian sends (daemon/systemd-notify.ts), nothing else. Its other options
 * (`--exec` since systemd 254 runs a program; `--pid=`, `--booted`, `--fdname`) are refused.
 */
const NOTIFY_WORDS: ReadonlySet<string> = newSet(listFrom(['--ready', 'READY=1', 'WATCHDOG=1', 'STOPPING=1', 'RELOADING=1']));
const NOTIFY_ARG = /^(?:STATUS=[^\n]*|MAINPID=\d{1,10})$/;

function notifyRefusal(args: List<string>): string | undefined {
  for (let i = 1; i < args.length; i++) {
    const arg = args[i] as string;
    if (!trusts(NOTIFY_WORDS, arg) && RegExpPrototypeExec(NOTIFY_ARG, arg) === null) return `running systemd-notify with '${arg}': only READY=1, WATCHDOG=1, STOPPING=1, RELOADING=1, STATUS=…, MAINPID=… and --ready are allowed`;
  }
  return undefined;
}

function refusalOf(trust: Trust, file: unknown, args: List<string>, envPairs: List<string>): string | undefined {
  if (typeof file !== 'string' || !trusts(trust.commands, file)) return `running ${StringCtor(file)}: not a program Guardian runs itself`;
  for (let i = 0; i < envPairs.length; i++) {
    const pair = envPairs[i] as string;
    const eq = StringPrototypeIndexOf(pair, '=');
    const key = eq < 0 ? pair : StringPrototypeSlice(pair, 0, eq);
    const value = eq < 0 ? '' : StringPrototypeSlice(pair, eq + 1);
    if (key === 'TPM2TOOLS_TCTI') {
      if (!trusts(trust.tcti, value)) return `running ${file} with the TCTI '${value}': not an allowed TCTI`;
    } else if (key === 'NOTIFY_SOCKET') {
      if (value !== trust.notifySocket) return `running ${file} with NOTIFY_SOCKET=${value}: not the service manager's socket`;
    }
  }
  if (StringPrototypeEndsWith(file, '/systemd-notify')) return notifyRefusal(args);
  const rest = list<string>();
  for (let i = 1; i < args.length; i++) listPush(rest, args[i] as string);
  const tctis = tctiValues(rest);
  for (let i = 0; i < tctis.length; i++) {
    if (!trusts(trust.tcti, tctis[i])) return `running ${file} with the TCTI '${tctis[i] as string}': not an allowed TCTI`;
  }
  return undefined;
}

/** Why this spawn is refused, or undefined when it is one Guardian makes itself. */
export function spawnRefusal(trust: Trust, file: unknown, args: readonly string[], envPairs: readonly string[]): string | undefined {
  return refusalOf(trust, file, listFrom(args), listFrom(envPairs));
}

/** An array's elements as strings, each read once, in a list of the guard's own; not an array: empty. */
function strings(value: unknown): List<string> {
  const out = list<string>();
  if (!ArrayIsArray(value)) return out;
  const n = (value as unknown[]).length;
  for (let i = 0; i < n; i++) listPush(out, StringCtor((value as unknown[])[i]));
  return out;
}

export function installProcessHooks(ctx: GuardContext, binding: (name: string) => unknown): void {
  /** The options, each own property read once into a record with no prototype: what is checked is what the native spawn reads. */
  const fresh = (options: unknown): Record<string, unknown> => {
    const copy = record();
    if (typeof options === 'object' && options !== null) {
      const keys = ReflectOwnKeys(options);
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i];
        if (typeof key === 'string') copy[key] = rec(options)[key];
      }
    }
    copy['args'] = strings(copy['args']);
    const pairs = strings(copy['envPairs']);
    const { kept, dropped } = pinPairs(pairs);
    copy['envPairs'] = kept;
    const file = copy['file'];
    // pinned, not refused: a hook between Guardian and the spawn (a test harness) may add variables. Every one is
    // dropped; reported unless it is Guardian's own, as it was started (a hook copying it on, not an injection)
    if (typeof file === 'string' && trusts(ctx.trust.commands, file)) {
      for (let i = 0; i < dropped.length; i++) {
        const key = dropped[i] as string;
        const own = MapPrototypeGet(ctx.trust.ownEnv, key);
        if (typeof own === 'string' && listIncludes(pairs, `${key}=${own}`)) continue;
        ctx.deny('process', `${file}:${key}`, `${key} for ${file}: the programs Guardian runs get a pinned environment; dropped`, 'handle');
      }
    }
    return copy;
  };
  const check = (copy: Record<string, unknown>): GuardianError | undefined => {
    const file = copy['file'];
    const why = refusalOf(ctx.trust, file, copy['args'] as List<string>, copy['envPairs'] as List<string>);
    return why === undefined ? undefined : ctx.deny('process', StringCtor(file), why, 'handle');
  };
  // process_wrap's Process#spawn (spawn, exec, execFile, fork) and spawn_sync.spawn (the sync forms)
  const targets = [rec(rec(rec(binding('process_wrap'))['Process'])['prototype']), rec(binding('spawn_sync'))];
  for (const target of targets) {
    const spawn = target['spawn'] as Fn;
    pin(target, 'spawn', function guardedSpawn(this: unknown, options: unknown): unknown {
      const copy = fresh(options);
      const refused = check(copy);
      if (refused !== undefined) throw refused;
      return ReflectApply(spawn, this, [copy]);
    });
  }
  const processBinding = binding;
  pin(process, 'binding', function guardedBinding(name: unknown): unknown {
    const module = StringCtor(name);
    if (trusts(FORBIDDEN_BINDINGS, module)) throw ctx.deny('binding', module, `process.binding('${module}') would bypass the firewall`);
    return processBinding(module);
  });
}
