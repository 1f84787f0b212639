/**
 * TCP and TLS at the API (`net.Socket.prototype.connect`, under tls, http,
 * https, fetch and mqtt) and listening sockets (`net.Server.prototype.listen`).
 * The connect options are copied first, each primitive read exactly once
 * (array form, getters that answer differently on each read, Proxies), the
 * copy is checked, and only a fresh plain object goes on: what was checked is
 * what is dialled. A host name goes on with the guard's own lookup (a caller's
 * `lookup` is dropped). The handle layer below checks the resolved address again.
 */
import dns from 'node:dns';
import net from 'node:net';
import type { GuardianError } from '../../core/errors.js';
import { canonicalIp } from '../ip.js';
import { rec, show, type Fn, type GuardContext } from './context.js';
import {
  ArrayIsArray, NumberCtor, NumberIsInteger, ReflectApply, RegExpPrototypeExec, StringPrototypeTrim, lastFunction, pin, record,
} from './primordials.js';

const DIGITS = /^\s*\d+\s*$/;

/** The options `net.Socket#connect` reads, besides host, port, path and lookup. */
const PRIMITIVE_OPTIONS = ['family', 'hints', 'localAddress', 'localPort', 'autoSelectFamily', 'autoSelectFamilyAttemptTimeout', 'timeout', 'noDelay', 'keepAlive', 'keepAliveInitialDelay'] as const;

export type ConnectCopy =
  | { readonly ok: true; readonly options: Record<string, unknown>; readonly host: string; readonly port: number }
  | { readonly ok: false; readonly target: string; readonly why: string };

function primitive(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && typeof value !== 'function');
}

/**
 * Copy what a connect was asked for, once: `raw` is the options object (or
 * anything a caller passed). A port must be an integer 0–65535 (a number or
 * a string of one), a host a string; anything else is refused here.
 */
export function copyConnectOptions(raw: unknown): ConnectCopy {
  const source = typeof raw === 'object' && raw !== null ? rec(raw) : record();
  const path: unknown = source['path'];
  if (path !== undefined && path !== null && path !== '' && path !== false) return { ok: false, target: `unix:${show(path)}`, why: `connection to the Unix socket ${show(path)}` };
  const hostValue: unknown = source['host'];
  const portValue: unknown = source['port'];
  // no prototype: an option planted on Object.prototype (a `lookup`, a `path`) is not seen by net
  const options = record();
  for (let i = 0; i < PRIMITIVE_OPTIONS.length; i++) {
    const key = PRIMITIVE_OPTIONS[i] as (typeof PRIMITIVE_OPTIONS)[number];
    const value: unknown = source[key];
    if (value === undefined) continue;
    if (!primitive(value)) return { ok: false, target: `option:${key}`, why: `a connect option (${key}) that is not a plain value` };
    options[key] = value;
  }
  if (hostValue !== undefined && hostValue !== null && typeof hostValue !== 'string') return { ok: false, target: `host:${typeof hostValue}`, why: 'a connect host that is not a string' };
  const host = typeof hostValue === 'string' && hostValue !== '' ? hostValue : 'localhost';
  const port = typeof portValue === 'number' || (typeof portValue === 'string' && StringPrototypeTrim(portValue) !== '') ? NumberCtor(portValue) : -1;
  if (!NumberIsInteger(port) || port < 0 || port > 65535) return { ok: false, target: `${host}:${show(portValue)}`, why: `a connect port that is not a TCP port (${show(portValue)})` };
  options['host'] = host;
  options['port'] = port;
  return { ok: true, options, host, port };
}

/**
 * The lookup the guard hands to net and dgram for a host name: the original
 * dns.lookup (captured here), asked only for allowed names, with the guard's
 * own callback, which remembers the addresses the name resolved to (the
 * handle layer then allows them for that name's ports). Nothing a caller
 * passes or holds is trusted for this.
 */
export function guardLookupFor(ctx: GuardContext): Fn {
  const lookup = dns.lookup as unknown as Fn;
  return function guardLookup(hostname: unknown, options: unknown, callback?: unknown): void {
    const cb = typeof options === 'function' ? options : callback;
    if (typeof cb !== 'function') return;
    if (typeof hostname !== 'string' || !ctx.policy.allowsLookup(hostname)) {
      const err = ctx.deny('lookup', show(hostname), `DNS lookup of ${show(hostname)}: the name is not in the manifest's AllowedConnections`);
      process.nextTick(cb, err);
      return;
    }
    let done = false;
    const remembering = (err: unknown, address: unknown, family: unknown): void => {
      if (done) return; // once: a second call is not the lookup's answer
      done = true;
      if (err === null || err === undefined) {
        if (ArrayIsArray(address)) {
          const all = address as unknown[];
          for (let i = 0; i < all.length; i++) {
            const entry: unknown = all[i];
            const value = typeof entry === 'object' && entry !== null ? rec(entry)['address'] : undefined;
            if (typeof value === 'string') ctx.remember(hostname, value);
          }
        } else if (typeof address === 'string') {
          ctx.remember(hostname, address);
        }
      }
      ReflectApply(cb as Fn, undefined, [err, address, family]);
    };
    ReflectApply(lookup, dns, [hostname, typeof options === 'object' && options !== null ? options : {}, remembering]);
  };
}

interface ConnectRequest { readonly raw: unknown; readonly cb: unknown }

/** net's own forms: (options[, cb]), (port[, host][, cb]), (path[, cb]), and its internal ([options, cb]). */
function connectRequest(args: unknown[]): ConnectRequest {
  const first: unknown = args[0];
  if (ArrayIsArray(first)) return { raw: (first as unknown[])[0], cb: (first as unknown[])[1] };
  if (typeof first === 'object' && first !== null) return { raw: first, cb: args[1] };
  if (typeof first === 'string' && RegExpPrototypeExec(DIGITS, first) === null) return { raw: { path: first }, cb: args[1] };
  return { raw: { port: first, host: typeof args[1] === 'string' ? args[1] : undefined }, cb: lastFunction(args) };
}

/** The refusal (reported) of a connect that is malformed or not allowed, else undefined. */
function connectRefusal(ctx: GuardContext, copy: ConnectCopy): GuardianError | undefined {
  if (!copy.ok) return ctx.deny('connect', copy.target, copy.why);
  if (!ctx.policy.allowsConnect(copy.host, copy.port)) return ctx.deny('connect', `${copy.host}:${copy.port}`, `connection to ${copy.host}:${copy.port} is not in the manifest's AllowedConnections`);
  return undefined;
}

interface ListenTarget { readonly port: number | undefined; readonly path: string | undefined }

/** What a listen(options | path | port, …) asks for: a Unix path, or a port (-1 for a handle or fd, 0 for one the kernel picks). */
function listenTarget(first: unknown): ListenTarget {
  if (typeof first === 'object' && first !== null) {
    const o = rec(first);
    const p: unknown = o['path'];
    const n: unknown = o['port'];
    if (typeof p === 'string') return { port: undefined, path: p };
    if (n !== undefined) return { port: NumberCtor(n), path: undefined };
    return { port: o['handle'] !== undefined || o['fd'] !== undefined ? -1 : 0, path: undefined };
  }
  if (typeof first === 'string' && RegExpPrototypeExec(DIGITS, first) === null) return { port: undefined, path: first };
  return { port: typeof first === 'function' || first === undefined ? 0 : NumberCtor(first), path: undefined };
}

/** The refusal (reported) of a listen that is not allowed, else undefined. */
function listenRefusal(ctx: GuardContext, target: ListenTarget): GuardianError | undefined {
  const port = target.port;
  const path = target.path;
  if (path !== undefined) return ctx.deny('listen', `unix:${path}`, `a server on the Unix socket ${path}`);
  if (port === undefined || !ctx.policy.allowsTcpListen(port)) return ctx.deny('listen', `tcp:${String(port)}`, `a TCP server on port ${String(port)} is not in the manifest's AllowedTcpServerPorts`);
  return undefined;
}

function hookConnect(ctx: GuardContext, guardLookup: Fn): void {
  const socket = rec(net.Socket.prototype);
  const connect = socket['connect'] as Fn;
  pin(socket, 'connect', function guardedConnect(this: net.Socket, ...args: unknown[]): net.Socket {
    const request = connectRequest(args);
    const copy = copyConnectOptions(request.raw);
    const refused = connectRefusal(ctx, copy);
    if (refused !== undefined || !copy.ok) {
      const err = refused;
      process.nextTick(() => this.destroy(err));
      return this;
    }
    if (canonicalIp(copy.host) === undefined) copy.options['lookup'] = guardLookup; // the guard resolves allowed names itself
    const cb = request.cb;
    return ReflectApply(connect, this, typeof cb === 'function' ? [copy.options, cb] : [copy.options]) as net.Socket;
  });
}

function hookListen(ctx: GuardContext): void {
  const server = rec(net.Server.prototype);
  const listen = server['listen'] as Fn;
  pin(server, 'listen', function guardedListen(this: net.Server, ...args: unknown[]): net.Server {
    const refused = listenRefusal(ctx, listenTarget(args[0]));
    if (refused !== undefined) {
      const err = refused;
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    return ReflectApply(listen, this, args) as net.Server;
  });
}

/** Returns the guard's lookup (dgram.ts gives it to every UDP socket). */
export function installNetHooks(ctx: GuardContext): Fn {
  const guardLookup = guardLookupFor(ctx);
  hookConnect(ctx, guardLookup);
  hookListen(ctx);
  return guardLookup;
}
