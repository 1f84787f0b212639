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
  const source = typeof raw === 'object' && raw !== null ? rec(raw) : {};
  const path: unknown = source['path'];
  if (path !== undefined && path !== null && path !== '' && path !== false) return { ok: false, target: `unix:${show(path)}`, why: `connection to the Unix socket ${show(path)}` };
  const hostValue: unknown = source['host'];
  const portValue: unknown = source['port'];
  const options: Record<string, unknown> = {};
  for (const key of PRIMITIVE_OPTIONS) {
    const value: unknown = source[key];
    if (value === undefined) continue;
    if (!primitive(value)) return { ok: false, target: `option:${key}`, why: `a connect option (${key}) that is not a plain value` };
    options[key] = value;
  }
  if (hostValue !== undefined && hostValue !== null && typeof hostValue !== 'string') return { ok: false, target: `host:${typeof hostValue}`, why: 'a connect host that is not a string' };
  const host = typeof hostValue === 'string' && hostValue !== '' ? hostValue : 'localhost';
  const port = typeof portValue === 'number' || (typeof portValue === 'string' && portValue.trim() !== '') ? Number(portValue) : Number.NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) return { ok: false, target: `${host}:${show(portValue)}`, why: `a connect port that is not a TCP port (${show(portValue)})` };
  return { ok: true, options: { ...options, host, port }, host, port };
}

export function installNetHooks(ctx: GuardContext): void {
  const originalLookup = dns.lookup.bind(dns) as Fn;
  const guardLookup = (...args: unknown[]): unknown => originalLookup(...args);
  const socket = rec(net.Socket.prototype);
  const connect = socket['connect'] as Fn;
  socket['connect'] = function guardedConnect(this: net.Socket, ...args: unknown[]): net.Socket {
    // net's own forms: (options[, cb]), (port[, host][, cb]), (path[, cb]), and its internal ([options, cb])
    const first: unknown = args[0];
    let raw: unknown;
    let cb: unknown;
    if (Array.isArray(first)) {
      raw = first[0] as unknown;
      cb = first[1] as unknown;
    } else if (typeof first === 'object' && first !== null) {
      raw = first;
      cb = args[1];
    } else if (typeof first === 'string' && !/^\s*\d+\s*$/.test(first)) {
      raw = { path: first };
      cb = args[1];
    } else {
      raw = { port: first, host: typeof args[1] === 'string' ? args[1] : undefined };
      cb = args.findLast((a) => typeof a === 'function');
    }
    const copy = copyConnectOptions(raw);
    let refused: GuardianError | undefined;
    if (!copy.ok) refused = ctx.deny('connect', copy.target, copy.why);
    else if (!ctx.policy.allowsConnect(copy.host, copy.port)) refused = ctx.deny('connect', `${copy.host}:${copy.port}`, `connection to ${copy.host}:${copy.port} is not in the manifest's AllowedConnections`);
    if (refused !== undefined || !copy.ok) {
      const err = refused;
      process.nextTick(() => this.destroy(err));
      return this;
    }
    if (canonicalIp(copy.host) === undefined) copy.options['lookup'] = guardLookup; // the guard resolves allowed names itself
    return (typeof cb === 'function' ? connect.call(this, copy.options, cb) : connect.call(this, copy.options)) as net.Socket;
  };

  const server = rec(net.Server.prototype);
  const listen = server['listen'] as Fn;
  server['listen'] = function guardedListen(this: net.Server, ...args: unknown[]): net.Server {
    const first = args[0];
    let port: number | undefined;
    let path: string | undefined;
    if (typeof first === 'object' && first !== null) {
      const o = rec(first);
      const p: unknown = o['path'];
      const n: unknown = o['port'];
      if (typeof p === 'string') path = p;
      else if (n !== undefined) port = Number(n);
      else port = o['handle'] !== undefined || o['fd'] !== undefined ? Number.NaN : 0;
    } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
      path = first;
    } else {
      port = typeof first === 'function' || first === undefined ? 0 : Number(first);
    }
    let refused: GuardianError | undefined;
    if (path !== undefined) refused = ctx.deny('listen', `unix:${path}`, `a server on the Unix socket ${path}`);
    else if (port === undefined || !ctx.policy.allowsTcpListen(port)) refused = ctx.deny('listen', `tcp:${String(port)}`, `a TCP server on port ${String(port)} is not in the manifest's AllowedTcpServerPorts`);
    if (refused !== undefined) {
      const err = refused;
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    return listen.apply(this, args) as net.Server;
  };
}
