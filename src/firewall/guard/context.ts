/**
 * What every hook of the in-process guard shares: the policy in force (a
 * closed one until the guard is armed), what Guardian itself may start, the
 * addresses the guard's own lookups found for allowed names, and how a
 * refusal is raised and reported.
 */
import { GuardianError } from '../../core/errors.js';
import { IsIP, MapIteratorPrototypeNext, MapPrototypeDelete, MapPrototypeGet, MapPrototypeGetSize, MapPrototypeKeys, MapPrototypeSet, ObjectFreeze, ReflectApply, SetPrototypeHas, list, listIncludes, listPush, newMap, newSet, type List } from './primordials.js';

export type DenialKind = 'connect' | 'send' | 'lookup' | 'resolver' | 'listen' | 'bind' | 'serial' | 'worker' | 'process' | 'binding' | 'inspector' | 'addon';
export const DENIAL_KINDS: readonly DenialKind[] = ['connect', 'send', 'lookup', 'resolver', 'listen', 'bind', 'serial', 'worker', 'process', 'binding', 'inspector', 'addon'];

/** Where the refusal happened: the public API (net, dns, dgram, …) or the native handle underneath it. */
export type Layer = 'api' | 'handle';

export interface Denial {
  readonly kind: DenialKind;
  /** What was asked for: `host:port`, a name, a port, a path, an executable. */
  readonly target: string;
  readonly layer: Layer;
  readonly error: GuardianError;
}

/** The questions the guard asks; ConnectionPolicy answers them from the manifest. */
export interface GuardPolicy {
  allowsConnect(host: string, port: number): boolean;
  allowsLookup(name: string): boolean;
  allowsTcpListen(port: number): boolean;
  allowsUdpBind(port: number): boolean;
  allowsSerial(path: string): boolean;
}

/** Before arming: nothing at all (`guardian run` reads its config and manifest without the network); an IP literal needs no query. */
export const CLOSED_POLICY: GuardPolicy = {
  allowsConnect: () => false,
  allowsLookup: (name) => IsIP(name) !== 0,
  allowsTcpListen: () => false,
  allowsUdpBind: () => false,
  allowsSerial: () => false,
};

export interface Trust {
  /** Worker sources (eval code or file URL / path) Guardian itself starts. */
  readonly workers: ReadonlySet<string>;
  /** Absolute paths of the executables Guardian itself runs. */
  readonly commands: ReadonlySet<string>;
  /** TCTI strings a trusted tool may be given (in TPM2TOOLS_TCTI, --tcti or -T). */
  readonly tcti: ReadonlySet<string>;
  /** The NOTIFY_SOCKET the service manager gave the process (the only one systemd-notify may be pointed at). */
  readonly notifySocket: string | undefined;
  /** Guardian's own environment when armed (a copy of it reaching a child is dropped without a report). */
  readonly ownEnv: ReadonlyMap<string, string>;
}

export const NO_TRUST: Trust = ObjectFreeze({ workers: newSet<string>(), commands: newSet<string>(), tcti: newSet<string>(), notifySocket: undefined, ownEnv: newMap<string, string>() });

/** Whether a trusted set holds `value` (through the captured Set#has, never the set's own). */
export function trusts(set: ReadonlySet<string>, value: unknown): boolean {
  return typeof value === 'string' && SetPrototypeHas(set, value);
}

/**
 * The policy's five questions, taken off the object when it is put in force:
 * the functions are kept (a method replaced on its class later is not asked)
 * and called through the captured Reflect.apply; only a strict `true` allows.
 */
function capture(policy: GuardPolicy): GuardPolicy {
  /* eslint-disable @typescript-eslint/unbound-method -- kept unbound on purpose: called below with the policy as receiver */
  const c = policy.allowsConnect;
  const l = policy.allowsLookup;
  const t = policy.allowsTcpListen;
  const u = policy.allowsUdpBind;
  const s = policy.allowsSerial;
  /* eslint-enable @typescript-eslint/unbound-method */
  return ObjectFreeze({
    allowsConnect: (host: string, port: number): boolean => ReflectApply(c, policy, [host, port]) === true,
    allowsLookup: (name: string): boolean => ReflectApply(l, policy, [name]) === true,
    allowsTcpListen: (port: number): boolean => ReflectApply(t, policy, [port]) === true,
    allowsUdpBind: (port: number): boolean => ReflectApply(u, policy, [port]) === true,
    allowsSerial: (path: string): boolean => ReflectApply(s, policy, [path]) === true,
  });
}

type Rec = Record<string, unknown>;
export type Fn = (...args: unknown[]) => unknown;

/** A property of an object, read once, as a record (no getters run twice). */
export function rec(value: unknown): Rec {
  return value as Rec;
}

/** A caller's value in a message: primitives as they are, objects only by their type (a toString could lie). */
export function show(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String(value);
  return `[${typeof value}]`;
}

/** The negative errno a native handle method returns for "permission denied" (what the OS firewall answers). */
export const UV_EACCES = -13;

const MAX_RESOLVED = 1024;

export class GuardContext {
  #policy: GuardPolicy;
  trust: Trust = NO_TRUST;
  readonly counts: Record<DenialKind, number>;
  /** Address → the allowed names whose lookup (by the guard's own resolver) answered it. Bounded. */
  readonly #resolved = newMap<string, List<string>>();

  constructor(
    setup: GuardPolicy,
    public onDenied: (denial: Denial) => void,
    public onFault: (error: GuardianError) => void,
  ) {
    this.#policy = capture(setup);
    const counts: Partial<Record<DenialKind, number>> = {};
    for (let i = 0; i < DENIAL_KINDS.length; i++) counts[DENIAL_KINDS[i] as DenialKind] = 0;
    this.counts = counts as Record<DenialKind, number>;
  }

  /** The questions in force (captured functions, see capture()). */
  get policy(): GuardPolicy {
    return this.#policy;
  }

  set policy(policy: GuardPolicy) {
    this.#policy = capture(policy);
  }

  deny(kind: DenialKind, target: string, message: string, layer: Layer = 'api'): GuardianError {
    const error = new GuardianError('GUARDIAN_E_FIREWALL_DENIED', `${message} (refused by the manifest firewall)`, { kind, target, layer });
    this.counts[kind] += 1;
    try {
      this.onDenied({ kind, target, layer, error });
    } catch (err) {
      // reporting must never turn a refusal into a crash; say so where it can still be seen
      process.stderr.write(`guardian: the firewall could not report a refusal: ${String(err)}\n`);
    }
    return error;
  }

  fault(code: 'GUARDIAN_E_FIREWALL_HOOK', message: string, context: Readonly<Record<string, string | number | boolean | undefined>>, cause?: unknown): GuardianError {
    const error = new GuardianError(code, message, context, cause === undefined ? undefined : { cause });
    try {
      this.onFault(error);
    } catch (err) {
      process.stderr.write(`guardian: the firewall could not report a fault: ${String(err)}\n`);
    }
    return error;
  }

  /** Remember what a lookup of an allowed name answered (the handle layer allows those addresses for that name's ports). */
  remember(name: string, address: string): void {
    if (!this.#policy.allowsLookup(name)) return;
    const resolved = this.#resolved;
    const names = (MapPrototypeGet(resolved, address) as List<string> | undefined) ?? list<string>();
    if (!listIncludes(names, name)) listPush(names, name);
    MapPrototypeDelete(resolved, address);
    MapPrototypeSet(resolved, address, names);
    if (MapPrototypeGetSize(resolved) > MAX_RESOLVED) MapPrototypeDelete(resolved, MapIteratorPrototypeNext(MapPrototypeKeys(resolved)).value);
  }

  /** The handle layer's question: may this resolved address and port be reached? */
  allowsAddress(address: string, port: number): boolean {
    const policy = this.#policy;
    if (policy.allowsConnect(address, port)) return true;
    const names = MapPrototypeGet(this.#resolved, address) as List<string> | undefined;
    if (names === undefined) return false;
    for (let i = 0; i < names.length; i++) if (policy.allowsConnect(names[i] as string, port)) return true;
    return false;
  }
}

// the hooks call these methods on the one context: nobody may replace them on the class
ObjectFreeze(GuardContext.prototype);
ObjectFreeze(GuardContext);
