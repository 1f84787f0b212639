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
import { rec, type Fn, type GuardContext, type Trust } from './context.js';

/** Names `process.binding` gives no one once the guard is armed: the handles under net, dgram, dns, child_process and the inspector. */
export const FORBIDDEN_BINDINGS: ReadonlySet<string> = new Set(['tcp_wrap', 'udp_wrap', 'pipe_wrap', 'stream_wrap', 'tls_wrap', 'js_stream', 'cares_wrap', 'process_wrap', 'spawn_sync', 'tty_wrap', 'inspector']);

/** The TCTI values an argument list names: `--tcti=X`, `--tcti X` (and getopt's prefixes `--tc…`), `-T X`, `-TX`, `-xT X`. */
export function tctiArguments(args: readonly string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const long = /^--([^=]*)(?:=(.*))?$/s.exec(arg);
    if (long !== null) {
      const [, name = '', inline] = long;
      if (name !== '' && 'tcti'.startsWith(name)) values.push(inline ?? args[++i] ?? '');
      continue;
    }
    const short = /^-[^-]*?T(.*)$/s.exec(arg);
    if (short !== null) values.push(short[1] !== '' ? short[1] ?? '' : args[++i] ?? '');
  }
  return values;
}

/** The environment a trusted program gets: only TPM2TOOLS_TCTI and NOTIFY_SOCKET; the rest is dropped (and reported). */
export function pinEnv(envPairs: readonly string[]): { kept: string[]; dropped: string[] } {
  const kept: string[] = [];
  const dropped: string[] = [];
  for (const pair of envPairs) {
    const key = pair.split('=', 1)[0] ?? '';
    if (PINNED_ENV.has(key)) kept.push(pair);
    else dropped.push(key);
  }
  return { kept, dropped };
}

const PINNED_ENV: ReadonlySet<string> = new Set(['TPM2TOOLS_TCTI', 'NOTIFY_SOCKET']);

/** Why this spawn is refused, or undefined when it is one Guardian makes itself. */
export function spawnRefusal(trust: Trust, file: unknown, args: readonly string[], envPairs: readonly string[]): string | undefined {
  if (typeof file !== 'string' || !trust.commands.has(file)) return `running ${String(file)}: not a program Guardian runs itself`;
  for (const pair of envPairs) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    if (key === 'TPM2TOOLS_TCTI') {
      if (!trust.tcti.has(value)) return `running ${file} with the TCTI '${value}': not an allowed TCTI`;
    } else if (key === 'NOTIFY_SOCKET') {
      if (value !== trust.notifySocket) return `running ${file} with NOTIFY_SOCKET=${value}: not the service manager's socket`;
    }
  }
  for (const tcti of tctiArguments(args.slice(1))) {
    if (!trust.tcti.has(tcti)) return `running ${file} with the TCTI '${tcti}': not an allowed TCTI`;
  }
  return undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

export function installProcessHooks(ctx: GuardContext, binding: (name: string) => unknown): void {
  const check = (options: unknown): GuardianError | undefined => {
    const o = rec(options); // the fresh copy: what is checked is what the native spawn gets
    const file = o['file'];
    const why = spawnRefusal(ctx.trust, file, strings(o['args']), strings(o['envPairs']));
    return why === undefined ? undefined : ctx.deny('process', String(file), why, 'handle');
  };
  const fresh = (options: unknown): Record<string, unknown> => {
    const copy = { ...rec(options) }; // each property read once
    copy['args'] = strings(copy['args']);
    const pairs = strings(copy['envPairs']);
    const { kept, dropped } = pinEnv(pairs);
    copy['envPairs'] = kept;
    const file = copy['file'];
    // pinned, not refused: a hook between Guardian and the spawn (a test harness) may add variables. Every one is
    // dropped; reported unless it is Guardian's own, as it was started (a hook copying it on, not an injection)
    if (typeof file === 'string' && ctx.trust.commands.has(file)) {
      for (const key of dropped) {
        if (pairs.includes(`${key}=${ctx.trust.ownEnv.get(key) ?? '\0'}`)) continue;
        ctx.deny('process', `${file}:${key}`, `${key} for ${file}: the programs Guardian runs get a pinned environment; dropped`, 'handle');
      }
    }
    return copy;
  };
  // process_wrap's Process#spawn (spawn, exec, execFile, fork) and spawn_sync.spawn (the sync forms)
  const targets = [rec(rec(rec(binding('process_wrap'))['Process'])['prototype']), rec(binding('spawn_sync'))];
  for (const target of targets) {
    const spawn = target['spawn'] as Fn;
    target['spawn'] = function guardedSpawn(this: unknown, options: unknown): unknown {
      const copy = fresh(options);
      const refused = check(copy);
      if (refused !== undefined) throw refused;
      return spawn.call(this, copy);
    };
  }
  const processBinding = binding;
  rec(process)['binding'] = function guardedBinding(name: unknown): unknown {
    const module = String(name);
    if (FORBIDDEN_BINDINGS.has(module)) throw ctx.deny('binding', module, `process.binding('${module}') would bypass the firewall`);
    return processBinding(module);
  };
}
