/**
 * The in-process guard: one layer of the manifest firewall, inside the process.
 * Installed once, before the daemon starts, it wraps the few places every
 * network, thread and process operation of Node goes through, whatever module
 * makes it (net, tls, http/https, fetch (undici), dgram, mqtt, the Azure SDK):
 *
 * - `net.Socket.prototype.connect` (TCP and TLS, also under http/https/fetch):
 *   the target must be allowed by `AllowedConnections`; a host name only as
 *   named. Name resolution is done by the guard's own lookup (a caller's
 *   `lookup` option is replaced), so an allowed name cannot be pointed elsewhere.
 *   Unix-socket connects are refused.
 * - `dns` (callback, promises, Resolver): only names listed in
 *   `AllowedConnections` may be looked up; reverse lookups are refused (a query
 *   is itself a message to the outside).
 * - `dgram`: sends and connects as for TCP; binding a port other than 0
 *   needs `AllowedUdpServerPorts`; a `lookup` option is dropped.
 * - `net.Server.prototype.listen` (also http/https servers): the port must be in
 *   `AllowedTcpServerPorts`; Unix-socket servers are refused.
 * - serial ports opened through serialport's binding: only `Uart` devices.
 * - `worker_threads.Worker`: only the worker sources Guardian itself starts
 *   (a worker has its own, unguarded copy of every module).
 * - `child_process` (spawn, exec, execFile, fork and the sync forms): only the
 *   executables Guardian itself runs; `process.binding` of the handle modules
 *   underneath all of this is refused.
 *
 * A refused operation fails the way the operation fails when the network
 * refuses it ('error' event, rejected promise, callback error, or a throw for
 * the synchronous forms) with GUARDIAN_E_FIREWALL_DENIED, and is handed to
 * `onDenied` (logged, counted, reported). The OS layer (nftables, the systemd
 * sandbox) is what holds when native code or a subverted process gets past this.
 */
import childProcess from 'node:child_process';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { syncBuiltinESMExports, createRequire } from 'node:module';
import net from 'node:net';
import workerThreads from 'node:worker_threads';
import { GuardianError } from '../core/errors.js';
import { canonicalIp } from './ip.js';
import type { ConnectionPolicy } from './policy.js';

export type DenialKind = 'connect' | 'send' | 'lookup' | 'listen' | 'bind' | 'serial' | 'worker' | 'process' | 'binding';

export interface Denial {
  readonly kind: DenialKind;
  /** What was asked for: `host:port`, a name, a port, a path, an executable. */
  readonly target: string;
  readonly error: GuardianError;
}

export interface GuardOptions {
  readonly policy: ConnectionPolicy;
  /** Worker sources (eval code or file URL / path) Guardian itself starts. */
  readonly trustedWorkers?: readonly string[];
  /** Executables Guardian itself runs, exactly as it names them (`systemd-notify`, the tpm2 tools by absolute path). */
  readonly trustedCommands?: readonly string[];
  readonly onDenied: (denial: Denial) => void;
}

export interface Guard {
  /** Refusals so far, by kind. */
  stats(): Readonly<Record<DenialKind, number>>;
}

const DNS_QUERIES = ['lookup', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx', 'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt'] as const;
const DNS_REVERSE = ['lookupService', 'reverse'] as const;
/** The handle bindings under net, dgram, dns and child_process: reaching them directly would bypass everything above. */
const FORBIDDEN_BINDINGS = new Set(['tcp_wrap', 'udp_wrap', 'pipe_wrap', 'stream_wrap', 'tls_wrap', 'js_stream', 'cares_wrap', 'process_wrap', 'spawn_sync', 'tty_wrap']);

type Fn = (...args: unknown[]) => unknown;
type Rec = Record<string, unknown>;

let installed: Guard | undefined;

/** Install the guard for the rest of the process's life (once; later calls return the first). */
export function installGuard(options: GuardOptions): Guard {
  if (installed !== undefined) return installed;
  const counts: Record<DenialKind, number> = { connect: 0, send: 0, lookup: 0, listen: 0, bind: 0, serial: 0, worker: 0, process: 0, binding: 0 };
  const { policy } = options;
  const deny = (kind: DenialKind, target: string, message: string): GuardianError => {
    const error = new GuardianError('GUARDIAN_E_FIREWALL_DENIED', `${message} (refused by the manifest firewall)`, { kind, target });
    counts[kind] += 1;
    try {
      options.onDenied({ kind, target, error });
    } catch {
      // reporting must never turn a refusal into a crash
    }
    return error;
  };
  const originalLookup = dns.lookup.bind(dns) as Fn;

  // ---- TCP / TLS (net, tls, http, https, fetch, mqtt) ----
  const connect = (net.Socket.prototype as unknown as Rec)['connect'] as Fn;
  const guardedLookup = (...args: unknown[]): unknown => originalLookup(...args);
  const normalizeArgs = (net as unknown as { _normalizeArgs: (args: unknown[]) => unknown[] })._normalizeArgs;
  net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]): net.Socket {
    const normalized = Array.isArray(args[0]) ? args[0] as unknown[] : normalizeArgs(args);
    const opts = (normalized[0] ?? {}) as Rec;
    let refused: GuardianError | undefined;
    if (typeof opts['path'] === 'string') {
      refused = deny('connect', `unix:${opts['path']}`, `connection to the Unix socket ${opts['path']}`);
    } else {
      const host = typeof opts['host'] === 'string' && opts['host'] !== '' ? opts['host'] : 'localhost';
      const port = Number(opts['port']);
      if (!policy.allowsConnect(host, port)) {
        refused = deny('connect', `${host}:${port}`, `connection to ${host}:${port} is not in the manifest's AllowedConnections`);
      } else if (canonicalIp(host) === undefined) {
        opts['lookup'] = guardedLookup; // the guard resolves allowed names itself
      }
    }
    if (refused !== undefined) {
      const err = refused;
      process.nextTick(() => this.destroy(err));
      return this;
    }
    return connect.call(this, normalized) as net.Socket;
  };

  // ---- listening sockets ----
  const listen = (net.Server.prototype as unknown as Rec)['listen'] as Fn;
  net.Server.prototype.listen = function guardedListen(this: net.Server, ...args: unknown[]): net.Server {
    const first = args[0];
    let port: number | undefined;
    let path: string | undefined;
    if (typeof first === 'object' && first !== null) {
      const o = first as Rec;
      if (typeof o['path'] === 'string') path = o['path'];
      else if (o['port'] !== undefined) port = Number(o['port']);
      else port = o['handle'] !== undefined || o['fd'] !== undefined ? Number.NaN : 0;
    } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
      path = first;
    } else {
      port = typeof first === 'function' || first === undefined ? 0 : Number(first);
    }
    let refused: GuardianError | undefined;
    if (path !== undefined) refused = deny('listen', `unix:${path}`, `a server on the Unix socket ${path}`);
    else if (port === undefined || !policy.allowsTcpListen(port)) refused = deny('listen', `tcp:${String(port)}`, `a TCP server on port ${String(port)} is not in the manifest's AllowedTcpServerPorts`);
    if (refused !== undefined) {
      const err = refused;
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    return listen.apply(this, args) as net.Server;
  } as typeof net.Server.prototype.listen;

  // ---- DNS ----
  const guardQuery = (target: object, name: string, reverse: boolean, promises: boolean): void => {
    const original = (target as Rec)[name];
    if (typeof original !== 'function') return;
    (target as Rec)[name] = function guardedDns(this: unknown, ...args: unknown[]): unknown {
      const query = String(args[0]);
      if (reverse || !policy.allowsLookup(query)) {
        const err = deny('lookup', query, reverse ? `reverse DNS lookup of ${query}` : `DNS lookup of ${query}: the name is not in the manifest's AllowedConnections`);
        if (promises) return Promise.reject(err);
        const callback = args.findLast((a) => typeof a === 'function') as Fn | undefined;
        if (callback === undefined) throw err;
        process.nextTick(callback, err);
        return undefined;
      }
      return (original as Fn).apply(this, args);
    };
  };
  for (const name of [...DNS_QUERIES, ...DNS_REVERSE]) {
    const reverse = (DNS_REVERSE as readonly string[]).includes(name);
    guardQuery(dns, name, reverse, false);
    guardQuery(dns.promises, name, reverse, true);
    guardQuery(dns.Resolver.prototype, name, reverse, false);
    guardQuery(dns.promises.Resolver.prototype, name, reverse, true);
  }

  // ---- UDP ----
  const createSocket = dgram.createSocket as unknown as Fn;
  (dgram as unknown as Rec)['createSocket'] = function guardedCreateSocket(...args: unknown[]): unknown {
    if (typeof args[0] === 'object' && args[0] !== null) {
      const rest = { ...(args[0] as Rec) };
      delete rest['lookup']; // the guard's dns.lookup resolves names, not the caller's
      args[0] = rest;
    }
    return createSocket(...args);
  };
  const udp = dgram.Socket.prototype as unknown as Rec;
  /** A refused send or connect fails through its callback, else as the socket's 'error'. */
  const refuseUdp = (socket: dgram.Socket, args: unknown[], host: string, port: string): void => {
    const err = deny('send', `${host}:${port}`, `UDP to ${host}:${port} is not in the manifest's AllowedConnections`);
    const callback = args.findLast((x) => typeof x === 'function') as Fn | undefined;
    if (callback !== undefined) process.nextTick(callback, err);
    else process.nextTick(() => socket.emit('error', err));
  };
  const send = udp['send'] as Fn;
  udp['send'] = function guardedSend(this: dgram.Socket, ...args: unknown[]): void {
    let connected = false;
    try {
      this.remoteAddress();
      connected = true;
    } catch {
      connected = false;
    }
    if (!connected) {
      // dgram's own reading of send(msg[, offset, length][, port][, address][, callback])
      const [, offset, length, port, address] = args;
      const [p, a] = address !== undefined && address !== null && address !== '' ? [port, address] : port !== undefined && typeof port !== 'function' ? [port, address] : [offset, length];
      const named = typeof a === 'string' && a !== '' ? a : undefined;
      const host = named ?? 'localhost';
      const allowed = named === undefined
        ? policy.allowsConnect('127.0.0.1', Number(p)) || policy.allowsConnect('::1', Number(p))
        : policy.allowsConnect(named, Number(p));
      if (!allowed) {
        refuseUdp(this, args, host, String(p));
        return;
      }
    }
    send.apply(this, args);
  };
  const udpConnect = udp['connect'] as Fn;
  udp['connect'] = function guardedUdpConnect(this: dgram.Socket, ...args: unknown[]): void {
    const port = Number(args[0]);
    const host = typeof args[1] === 'string' && args[1] !== '' ? args[1] : 'localhost';
    if (!policy.allowsConnect(host, port)) {
      refuseUdp(this, args, host, String(port));
      return;
    }
    udpConnect.apply(this, args);
  };
  const bind = udp['bind'] as Fn;
  udp['bind'] = function guardedBind(this: dgram.Socket, ...args: unknown[]): dgram.Socket {
    const first = args[0];
    const port = typeof first === 'object' && first !== null ? Number((first as Rec)['port'] ?? 0) : typeof first === 'number' || typeof first === 'string' ? Number(first) : 0;
    if (!policy.allowsUdpBind(port)) {
      const err = deny('bind', `udp:${port}`, `a UDP server on port ${port} is not in the manifest's AllowedUdpServerPorts`);
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    return bind.apply(this, args) as dgram.Socket;
  };

  // ---- serial ports (serialport's native binding; modbus-serial opens through it) ----
  try {
    const require = createRequire(createRequire(import.meta.url).resolve('modbus-serial'));
    const bindings = require(require.resolve('@serialport/bindings-cpp')) as { LinuxBinding?: Rec };
    const binding = bindings.LinuxBinding;
    const open = binding?.['open'];
    if (binding !== undefined && typeof open === 'function') {
      binding['open'] = function guardedOpen(this: unknown, ...args: unknown[]): unknown {
        const path = String((args[0] as Rec | undefined)?.['path']);
        if (!policy.allowsSerial(path)) return Promise.reject(deny('serial', path, `serial device ${path} is not in the manifest's Uart`));
        return (open as Fn).apply(this, args);
      };
    }
  } catch {
    // no serialport here: nothing to open serial ports with, nothing to guard
  }

  // ---- worker threads ----
  const trustedWorkers = new Set(options.trustedWorkers ?? []);
  const Worker = workerThreads.Worker;
  class GuardedWorker extends Worker {
    constructor(source: string | URL, opts?: workerThreads.WorkerOptions) {
      const key = source instanceof URL ? source.href : String(source);
      if (!trustedWorkers.has(key)) {
        throw deny('worker', key.length > 80 ? `${key.slice(0, 77)}...` : key, 'a worker thread Guardian does not start itself (workers are not guarded inside)');
      }
      super(source, opts);
    }
  }
  (workerThreads as unknown as Rec)['Worker'] = GuardedWorker;

  // ---- child processes ----
  const trustedCommands = new Set(options.trustedCommands ?? []);
  // exact match: a trusted name copied elsewhere (/tmp/x/systemd-notify) is not trusted
  const trusted = (file: unknown): boolean => typeof file === 'string' && trustedCommands.has(file);
  const cpProto = childProcess.ChildProcess.prototype as unknown as Rec;
  const spawn = cpProto['spawn'] as Fn;
  cpProto['spawn'] = function guardedSpawn(this: unknown, ...args: unknown[]): unknown {
    const file = (args[0] as Rec | undefined)?.['file'];
    if (!trusted(file)) throw deny('process', String(file), `running ${String(file)}: not a program Guardian runs itself`);
    return spawn.apply(this, args);
  };
  const cp = childProcess as unknown as Rec;
  for (const name of ['spawnSync', 'execFileSync', 'execSync'] as const) {
    const original = cp[name] as Fn;
    cp[name] = function guardedSync(this: unknown, ...args: unknown[]): unknown {
      const file = name === 'execSync' ? '/bin/sh' : args[0];
      if (!trusted(file)) throw deny('process', String(file), `running ${String(file)}: not a program Guardian runs itself`);
      return original.apply(this, args);
    };
  }
  const binding = ((process as unknown as Rec)['binding'] as Fn).bind(process);
  (process as unknown as Rec)['binding'] = function guardedBinding(name: unknown): unknown {
    if (FORBIDDEN_BINDINGS.has(String(name))) throw deny('binding', String(name), `process.binding('${String(name)}') would bypass the firewall`);
    return binding(name);
  };

  syncBuiltinESMExports();
  installed = { stats: () => ({ ...counts }) };
  return installed;
}
