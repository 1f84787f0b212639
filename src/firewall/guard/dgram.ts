/**
 * UDP at the API: sends and connects as for TCP, binding a port other than 0
 * needs `AllowedUdpServerPorts`, and a caller's `lookup` is dropped, by
 * `dgram.createSocket` and by `new dgram.Socket(…)` alike. A socket made some
 * other way (its prototype's constructor) keeps its lookup: the udp_wrap
 * handle (handles.ts) checks the resolved address at send and connect.
 */
import dgram from 'node:dgram';
import { rec, type Fn, type GuardContext } from './context.js';

/** The socket options without `lookup`, copied once (a getter cannot answer differently later). */
function withoutLookup(options: unknown): unknown {
  if (typeof options !== 'object' || options === null) return options;
  const copy = { ...rec(options) };
  delete copy['lookup'];
  return copy;
}

export function installDgramHooks(ctx: GuardContext): void {
  const module = rec(dgram);
  const createSocket = module['createSocket'] as Fn;
  module['createSocket'] = function guardedCreateSocket(type: unknown, listener?: unknown): unknown {
    return createSocket(withoutLookup(type), listener);
  };
  const Socket = module['Socket'] as new (type: unknown, listener?: unknown) => dgram.Socket;
  const GuardedSocket = function GuardedSocket(type: unknown, listener?: unknown): dgram.Socket {
    return new Socket(withoutLookup(type), listener);
  };
  GuardedSocket.prototype = Socket.prototype as unknown;
  module['Socket'] = GuardedSocket;

  const udp = rec(dgram.Socket.prototype);
  /** A refused send or connect fails through its callback, else as the socket's 'error'. */
  const refuse = (socket: dgram.Socket, args: unknown[], host: string, port: string): void => {
    const err = ctx.deny('send', `${host}:${port}`, `UDP to ${host}:${port} is not in the manifest's AllowedConnections`);
    const callback = args.findLast((x) => typeof x === 'function') as Fn | undefined;
    if (callback !== undefined) process.nextTick(callback, err);
    else process.nextTick(() => socket.emit('error', err));
  };
  const send = udp['send'] as Fn;
  udp['send'] = function guardedSend(this: dgram.Socket, ...args: unknown[]): void {
    let connected: boolean;
    try {
      this.remoteAddress();
      connected = true;
    } catch {
      connected = false; // not connected (or not running): the destination is checked
    }
    if (!connected) {
      // dgram's own reading of send(msg[, offset, length][, port][, address][, callback])
      const [, offset, length, port, address] = args;
      const [p, a] = address !== undefined && address !== null && address !== '' ? [port, address] : port !== undefined && typeof port !== 'function' ? [port, address] : [offset, length];
      const named = typeof a === 'string' && a !== '' ? a : undefined;
      const allowed = named === undefined
        ? ctx.policy.allowsConnect('127.0.0.1', Number(p)) || ctx.policy.allowsConnect('::1', Number(p))
        : ctx.policy.allowsConnect(named, Number(p));
      if (!allowed) {
        refuse(this, args, named ?? 'localhost', String(p));
        return;
      }
    }
    send.apply(this, args);
  };
  const connect = udp['connect'] as Fn;
  udp['connect'] = function guardedUdpConnect(this: dgram.Socket, ...args: unknown[]): void {
    const port = Number(args[0]);
    const host = typeof args[1] === 'string' && args[1] !== '' ? args[1] : 'localhost';
    if (!ctx.policy.allowsConnect(host, port)) {
      refuse(this, args, host, String(port));
      return;
    }
    connect.apply(this, args);
  };
  const bind = udp['bind'] as Fn;
  udp['bind'] = function guardedBind(this: dgram.Socket, ...args: unknown[]): dgram.Socket {
    const first = args[0];
    const port = typeof first === 'object' && first !== null ? Number(rec(first)['port'] ?? 0) : typeof first === 'number' || typeof first === 'string' ? Number(first) : 0;
    if (!ctx.policy.allowsUdpBind(port)) {
      const err = ctx.deny('bind', `udp:${port}`, `a UDP server on port ${port} is not in the manifest's AllowedUdpServerPorts`);
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    return bind.apply(this, args) as dgram.Socket;
  };
}
