/**
 * UDP at the API: sends and connects as for TCP, binding a port other than 0
 * needs `AllowedUdpServerPorts`, and a caller's `lookup` is replaced by the
 * guard's own (net.ts), by `dgram.createSocket` and by `new dgram.Socket(…)`
 * alike. A socket made some other way (its prototype's constructor) keeps its
 * lookup: the udp_wrap handle (handles.ts) checks the resolved address at send
 * and connect, and only the guard's own lookups make a name's address allowed.
 */
import dgram from 'node:dgram';
import { rec, type Fn, type GuardContext } from './context.js';
import { NumberCtor, ReflectApply, ReflectOwnKeys, lastFunction, pin, record } from './primordials.js';

/** The socket options with the guard's lookup instead of a caller's, each own property read once into a fresh record. */
function withGuardLookup(options: unknown, guardLookup: Fn): unknown {
  const copy = record();
  if (typeof options === 'string') copy['type'] = options;
  else if (typeof options === 'object' && options !== null) {
    const keys = ReflectOwnKeys(options);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (typeof key === 'string') copy[key] = rec(options)[key];
    }
  } else return options;
  copy['lookup'] = guardLookup;
  return copy;
}

interface UdpDestination { readonly named: string | undefined; readonly port: number }

/** Whether `socket` is connected: dgram's remoteAddress throws when it is not (or not running). */
function isConnected(remoteAddress: Fn, socket: dgram.Socket): boolean {
  try {
    ReflectApply(remoteAddress, socket, []);
    return true;
  } catch {
    return false; // not connected (or not running): the destination is checked
  }
}

/** Where an unconnected send goes, in dgram's own reading of send(msg[, offset, length][, port][, address][, callback]). */
function sendDestination(args: unknown[]): UdpDestination {
  const offset = args[1];
  const length = args[2];
  const port = args[3];
  const address = args[4];
  const full = address !== undefined && address !== null && address !== '';
  const p = full || (port !== undefined && typeof port !== 'function') ? port : offset;
  const a = full || (port !== undefined && typeof port !== 'function') ? address : length;
  const named = typeof a === 'string' && a !== '' ? a : undefined;
  return { named, port: NumberCtor(p) };
}

/** An unnamed destination is localhost: either loopback address allowed will do. */
function allowsSend(ctx: GuardContext, dest: UdpDestination): boolean {
  return dest.named === undefined
    ? ctx.policy.allowsConnect('127.0.0.1', dest.port) || ctx.policy.allowsConnect('::1', dest.port)
    : ctx.policy.allowsConnect(dest.named, dest.port);
}

/** The port a bind(port | options, …) asks for (0: the kernel picks one). */
function bindPort(first: unknown): number {
  return typeof first === 'object' && first !== null ? NumberCtor(rec(first)['port'] ?? 0) : typeof first === 'number' || typeof first === 'string' ? NumberCtor(first) : 0;
}

type Refuse = (socket: dgram.Socket, args: unknown[], host: string, port: string) => void;

/** A refused send or connect fails through its callback, else as the socket's 'error'. */
function refuserFor(ctx: GuardContext): Refuse {
  return (socket, args, host, port) => {
    const err = ctx.deny('send', `${host}:${port}`, `UDP to ${host}:${port} is not in the manifest's AllowedConnections`);
    const callback = lastFunction(args);
    if (callback !== undefined) process.nextTick(callback, err);
    else process.nextTick(() => socket.emit('error', err));
  };
}

/** `dgram.createSocket` and `new dgram.Socket(…)` get the guard's lookup. */
function hookSocketFactories(guardLookup: Fn): void {
  const module = rec(dgram);
  const createSocket = module['createSocket'] as Fn;
  pin(module, 'createSocket', function guardedCreateSocket(type: unknown, listener?: unknown): unknown {
    return createSocket(withGuardLookup(type, guardLookup), listener);
  });
  const Socket = module['Socket'] as new (type: unknown, listener?: unknown) => dgram.Socket;
  const GuardedSocket = function GuardedSocket(type: unknown, listener?: unknown): dgram.Socket {
    return new Socket(withGuardLookup(type, guardLookup), listener);
  };
  GuardedSocket.prototype = Socket.prototype as unknown;
  pin(module, 'Socket', GuardedSocket);
}

function hookSend(ctx: GuardContext, udp: Record<string, unknown>, refuse: Refuse): void {
  const remoteAddress = udp['remoteAddress'] as Fn;
  const send = udp['send'] as Fn;
  pin(udp, 'send', function guardedSend(this: dgram.Socket, ...args: unknown[]): void {
    if (!isConnected(remoteAddress, this)) {
      const dest = sendDestination(args);
      if (!allowsSend(ctx, dest)) {
        refuse(this, args, dest.named ?? 'localhost', `${dest.port}`);
        return;
      }
    }
    ReflectApply(send, this, args);
  });
}

function hookConnect(ctx: GuardContext, udp: Record<string, unknown>, refuse: Refuse): void {
  const connect = udp['connect'] as Fn;
  pin(udp, 'connect', function guardedUdpConnect(this: dgram.Socket, ...args: unknown[]): void {
    const port = NumberCtor(args[0]);
    const host = typeof args[1] === 'string' && args[1] !== '' ? args[1] : 'localhost';
    if (!ctx.policy.allowsConnect(host, port)) {
      refuse(this, args, host, `${port}`);
      return;
    }
    ReflectApply(connect, this, args);
  });
}

function hookBind(ctx: GuardContext, udp: Record<string, unknown>): void {
  const bind = udp['bind'] as Fn;
  pin(udp, 'bind', function guardedBind(this: dgram.Socket, ...args: unknown[]): dgram.Socket {
    const port = bindPort(args[0]);
    if (!ctx.policy.allowsUdpBind(port)) {
      const err = ctx.deny('bind', `udp:${port}`, `a UDP server on port ${port} is not in the manifest's AllowedUdpServerPorts`);
      process.nextTick(() => this.emit('error', err));
      return this;
    }
    return ReflectApply(bind, this, args) as dgram.Socket;
  });
}

export function installDgramHooks(ctx: GuardContext, guardLookup: Fn): void {
  hookSocketFactories(guardLookup);
  const udp = rec(dgram.Socket.prototype);
  const refuse = refuserFor(ctx);
  hookSend(ctx, udp, refuse);
  hookConnect(ctx, udp, refuse);
  hookBind(ctx, udp);
}
