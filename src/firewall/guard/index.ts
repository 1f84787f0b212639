/**
 * The in-process guard: one layer of the manifest firewall, inside the process.
 * Installed once, from the entry module, before any dependency loads; armed
 * once, when the manifest is loaded (until then it allows nothing, or, for the
 * demo's own broker and simulator, listening only). It guards two depths:
 *
 * - the API (net.ts, dns.ts, dgram.ts, worker.ts, inspector.ts): clear errors
 *   (GUARDIAN_E_FIREWALL_DENIED) where Node's own code would fail;
 * - the native handles underneath (handles.ts, process.ts, serial.ts): the
 *   prototypes of tcp_wrap, pipe_wrap, udp_wrap, cares_wrap and process_wrap,
 *   spawn_sync and the serialport addon's open, so that a reference saved
 *   before arming (a saved `net.Socket.prototype.connect`, a saved
 *   `process.binding('tcp_wrap')`) still meets the check. A refusal there
 *   returns EACCES as the OS firewall would.
 *
 * Every refusal is handed to `onDenied` (logged, counted, reported). Code that
 * ran before the guard was installed can keep the native functions themselves;
 * that is why `guardian run` refuses preloads. The OS layer (nftables, the
 * systemd sandbox) is what holds against native code.
 */
import { GuardianError } from '../../core/errors.js';
import { CLOSED_POLICY, GuardContext, NO_TRUST, type Denial, type DenialKind, type GuardPolicy } from './context.js';
import { installDgramHooks } from './dgram.js';
import { installDnsHooks } from './dns.js';
import { installHandleHooks } from './handles.js';
import { installInspectorHooks } from './inspector.js';
import { installNetHooks } from './net.js';
import { installProcessHooks } from './process.js';
import { installSerialHooks } from './serial.js';
import { installWorkerHook } from './worker.js';
import { syncBuiltinESMExports } from 'node:module';
import { MapPrototypeSet, ObjectFreeze, ReflectOwnKeys, StringPrototypeStartsWith, listFrom, newMap, newSet } from './primordials.js';

export { CLOSED_POLICY, DENIAL_KINDS, type Denial, type DenialKind, type GuardPolicy, type Layer } from './context.js';
export { copyConnectOptions } from './net.js';
export { preloadFlags } from './preload.js';
export { pinEnv, spawnRefusal, tctiArguments } from './process.js';

export interface InstallOptions {
  /** The policy until the guard is armed; default CLOSED_POLICY (nothing). */
  readonly setup?: GuardPolicy;
  /** Refusals before arming (they are also kept, up to 100, and handed to the armed onDenied). */
  readonly onDenied?: (denial: Denial) => void;
  /** A part of the guard could not be installed (that path is then closed). */
  readonly onFault?: (error: GuardianError) => void;
}

export interface ArmOptions {
  readonly policy: GuardPolicy;
  /** Worker sources (eval code or file URL / path) Guardian itself starts. */
  readonly trustedWorkers?: readonly string[];
  /** Executables Guardian itself runs, by absolute path (a bare name is refused). */
  readonly trustedCommands?: readonly string[];
  /** TCTI strings the trusted tools may be given. */
  readonly trustedTcti?: readonly string[];
  /** Where refusals go from now on (they went to the install's onDenied before). */
  readonly onDenied?: (denial: Denial) => void;
  readonly onFault?: (error: GuardianError) => void;
}

export interface Guard {
  /** Refusals so far, by kind. */
  stats(): Readonly<Record<DenialKind, number>>;
  /** Put the manifest in force. Once only: a second call (code that wants a wider policy) throws. */
  arm(options: ArmOptions): void;
  readonly armed: boolean;
}

let installed: Guard | undefined;

/** The guard, if it is installed. */
export function currentGuard(): Guard | undefined {
  return installed;
}

/** Install the hooks for the rest of the process's life (once; later calls return the first guard). */
export function installGuard(options: InstallOptions): Guard {
  if (installed !== undefined) return installed;
  const backlog: Denial[] = [];
  const early = (denial: Denial): void => {
    if (backlog.length < 100) backlog.push(denial);
    options.onDenied?.(denial);
  };
  const ctx = new GuardContext(options.setup ?? CLOSED_POLICY, early, options.onFault ?? ((err) => process.stderr.write(`guardian: ${err.code}: ${err.message}\n`)));
  // the bindings, taken before process.binding refuses them
  const processBinding = (process as unknown as { binding: (name: string) => unknown }).binding.bind(process);
  installHandleHooks(ctx, processBinding);
  installInspectorHooks(ctx, processBinding);
  installSerialHooks(ctx);
  installProcessHooks(ctx, processBinding);
  const guardLookup = installNetHooks(ctx);
  installDnsHooks(ctx);
  installDgramHooks(ctx, guardLookup);
  installWorkerHook(ctx);
  syncBuiltinESMExports();
  let armed = false;
  installed = ObjectFreeze({
    stats: () => ({ ...ctx.counts }),
    get armed() {
      return armed;
    },
    arm(arm: ArmOptions): void {
      if (armed) throw ctx.deny('binding', 'arm', 'arming the firewall a second time (the manifest in force cannot be replaced)');
      const commands = listFrom(arm.trustedCommands ?? []);
      for (let i = 0; i < commands.length; i++) {
        const command = commands[i] as string;
        if (typeof command !== 'string' || !StringPrototypeStartsWith(command, '/')) throw new GuardianError('GUARDIAN_E_FIREWALL_HOOK', `a trusted program must be named by its absolute path, not '${command}' (PATH would decide what runs)`, { command });
      }
      armed = true;
      if (arm.onDenied !== undefined) ctx.onDenied = arm.onDenied;
      if (arm.onFault !== undefined) ctx.onFault = arm.onFault;
      // the guard's own copies, read through captured built-ins only (primordials.ts)
      const ownEnv = newMap<string, string>();
      const env = process.env;
      const keys = ReflectOwnKeys(env);
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i];
        const value = typeof key === 'string' ? env[key] : undefined;
        if (typeof key === 'string' && typeof value === 'string') MapPrototypeSet(ownEnv, key, value);
      }
      ctx.trust = ObjectFreeze({
        ...NO_TRUST,
        workers: newSet(listFrom(arm.trustedWorkers ?? [])),
        commands: newSet(commands),
        tcti: newSet(listFrom(arm.trustedTcti ?? [])),
        notifySocket: process.env['NOTIFY_SOCKET'],
        ownEnv,
      });
      ctx.policy = arm.policy;
      for (const denial of backlog.splice(0)) ctx.onDenied(denial);
    },
  });
  return installed;
}
