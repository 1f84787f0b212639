/**
 * The native handles under net, dgram and dns (tcp_wrap, pipe_wrap, udp_wrap,
 * cares_wrap), guarded at their prototypes. Every socket of the process is one
 * of these handles, and the prototypes are shared with any copy of the binding
 * object, so a saved `net.Socket.prototype.connect`, a saved `dns.lookup` or a
 * `process.binding('tcp_wrap')` taken before the guard was armed still ends
 * here. At this depth names are already resolved: an address is allowed if the
 * manifest allows it, or if the guard's own lookup of an allowed name answered
 * it (remembered with the name, so the name's ports apply). A refusal returns
 * EACCES, as the OS firewall would, and is reported like any other.
 */
import { UV_EACCES, rec, type Fn, type GuardContext } from './context.js';
import { ReflectApply, StringCtor, listFrom, pin, record, type List } from './primordials.js';

type Wrapper = (original: Fn) => Fn;

/**
 * Replace a method for good (pinned: not writable, not configurable), keeping
 * the original for the wrapper only; the wrapper calls it through the
 * captured Reflect.apply with its own copy of the arguments (no prototype).
 */
function wrap(target: unknown, name: string, make: Wrapper): void {
  const object = rec(target);
  const original = object[name];
  if (typeof original !== 'function') throw new TypeError(`${name} is not a function here`);
  pin(object, name, make(original as Fn));
}

function prototypeOf(binding: unknown, className: string): Record<string, unknown> {
  return rec(rec(rec(binding)[className])['prototype']);
}

/** The arguments as a list of their own (read once; nothing planted on Array.prototype is seen). */
function own(args: unknown[]): List<unknown> {
  return listFrom(args);
}

function installTcp(ctx: GuardContext, binding: (name: string) => unknown): void {
  const tcp = prototypeOf(binding('tcp_wrap'), 'TCP');
  const getsockname = tcp['getsockname'] as Fn; // the original: a replaced getsockname cannot fake the port
  for (const name of ['connect', 'connect6']) {
    // connect(req, address, port): the native method takes exactly a string and a number; anything else is refused here
    wrap(tcp, name, (original) => function guardedTcpConnect(this: unknown, ...args: unknown[]): unknown {
      const a = own(args);
      const address = a[1];
      const port = a[2];
      if (typeof address !== 'string' || typeof port !== 'number' || !ctx.allowsAddress(address, port)) {
        ctx.deny('connect', `${StringCtor(address)}:${StringCtor(port)}`, `connection to ${StringCtor(address)}:${StringCtor(port)}: not in the manifest's AllowedConnections`, 'handle');
        return UV_EACCES;
      }
      return ReflectApply(original, this, a);
    });
  }
  wrap(tcp, 'listen', (original) => function guardedTcpListen(this: unknown, ...args: unknown[]): unknown {
    const out = record();
    const err = ReflectApply(getsockname, this, [out]);
    const port = err === 0 && typeof out['port'] === 'number' ? out['port'] : -1; // unknown: no port is allowed
    if (!ctx.policy.allowsTcpListen(port)) {
      ctx.deny('listen', `tcp:${StringCtor(port)}`, `a TCP server on port ${StringCtor(port)} is not in the manifest's AllowedTcpServerPorts`, 'handle');
      return UV_EACCES;
    }
    return ReflectApply(original, this, own(args));
  });
}

function installPipe(ctx: GuardContext, binding: (name: string) => unknown): void {
  const pipe = prototypeOf(binding('pipe_wrap'), 'Pipe');
  // connect(req, path), bind(path), listen(backlog): no Unix socket, client or server
  const names: readonly (readonly [string, 'connect' | 'listen'])[] = [['connect', 'connect'], ['bind', 'listen'], ['listen', 'listen']];
  for (const [name, kind] of names) {
    wrap(pipe, name, () => function guardedPipe(this: unknown, ...args: unknown[]): unknown {
      const a = own(args);
      const at = a[name === 'connect' ? 1 : 0];
      const path = typeof at === 'string' ? at : '?';
      ctx.deny(kind, `unix:${path}`, `a Unix socket (${name} ${path})`, 'handle');
      return UV_EACCES;
    });
  }
}

function installUdp(ctx: GuardContext, binding: (name: string) => unknown): void {
  const udp = prototypeOf(binding('udp_wrap'), 'UDP');
  const refuse = (address: unknown, port: unknown): number => {
    ctx.deny('send', `${StringCtor(address)}:${StringCtor(port)}`, `UDP to ${StringCtor(address)}:${StringCtor(port)}: not in the manifest's AllowedConnections`, 'handle');
    return UV_EACCES;
  };
  for (const name of ['send', 'send6']) {
    // the native send is a sendto exactly when it gets six arguments: send(req, list, count, port, address, hasCallback);
    // with any other count it sends on the connected socket (checked at connect)
    wrap(udp, name, (original) => function guardedUdpSend(this: unknown, ...args: unknown[]): unknown {
      const a = own(args);
      if (a.length === 6) {
        const port = a[3];
        const address = a[4];
        if (typeof port !== 'number' || typeof address !== 'string' || !ctx.allowsAddress(address, port)) return refuse(address, port);
      }
      return ReflectApply(original, this, a);
    });
  }
  for (const name of ['connect', 'connect6']) {
    wrap(udp, name, (original) => function guardedUdpConnect(this: unknown, ...args: unknown[]): unknown {
      const a = own(args);
      const address = a[0];
      const port = a[1];
      if (typeof address !== 'string' || typeof port !== 'number' || !ctx.allowsAddress(address, port)) return refuse(address, port);
      return ReflectApply(original, this, a);
    });
  }
  for (const name of ['bind', 'bind6']) {
    // bind(address, port, flags)
    wrap(udp, name, (original) => function guardedUdpBind(this: unknown, ...args: unknown[]): unknown {
      const a = own(args);
      const port = a[1] === undefined ? 0 : a[1];
      if (typeof port !== 'number' || !ctx.policy.allowsUdpBind(port)) {
        ctx.deny('bind', `udp:${StringCtor(port)}`, `a UDP server on port ${StringCtor(port)} is not in the manifest's AllowedUdpServerPorts`, 'handle');
        return UV_EACCES;
      }
      return ReflectApply(original, this, a);
    });
  }
}

const QUERIES = ['queryAny', 'queryA', 'queryAaaa', 'queryCaa', 'queryCname', 'queryMx', 'queryNs', 'queryTxt', 'querySrv', 'queryPtr', 'queryNaptr', 'querySoa'];

function installCares(ctx: GuardContext, binding: (name: string) => unknown): void {
  const cares = binding('cares_wrap');
  // getaddrinfo(req, hostname, family, hints, order): dns.lookup, and so every connect by name. Only the guard's
  // own lookup (net.ts) remembers what an allowed name resolved to; nothing on a caller's req is trusted
  wrap(cares, 'getaddrinfo', (original) => function guardedGetaddrinfo(this: unknown, ...args: unknown[]): unknown {
    const a = own(args);
    const name = a[1];
    if (typeof name !== 'string' || !ctx.policy.allowsLookup(name)) {
      ctx.deny('lookup', StringCtor(name), `DNS lookup of ${StringCtor(name)}: the name is not in the manifest's AllowedConnections`, 'handle');
      return UV_EACCES;
    }
    return ReflectApply(original, this, a);
  });
  wrap(cares, 'getnameinfo', () => function guardedGetnameinfo(...args: unknown[]): unknown {
    const a = own(args);
    ctx.deny('lookup', StringCtor(a[1]), `reverse DNS lookup of ${StringCtor(a[1])}`, 'handle');
    return UV_EACCES;
  });
  const channel = prototypeOf(cares, 'ChannelWrap');
  for (const name of QUERIES) {
    wrap(channel, name, (original) => function guardedQuery(this: unknown, ...args: unknown[]): unknown {
      const a = own(args);
      const query = a[1];
      if (name === 'queryPtr' || typeof query !== 'string' || !ctx.policy.allowsLookup(query)) {
        ctx.deny('lookup', StringCtor(query), `DNS query (${name}) for ${StringCtor(query)}: the name is not in the manifest's AllowedConnections`, 'handle');
        return UV_EACCES;
      }
      return ReflectApply(original, this, a);
    });
  }
  wrap(channel, 'getHostByAddr', () => function guardedGetHostByAddr(...args: unknown[]): unknown {
    const a = own(args);
    ctx.deny('lookup', StringCtor(a[1]), `reverse DNS lookup of ${StringCtor(a[1])}`, 'handle');
    return UV_EACCES;
  });
  wrap(channel, 'setServers', () => function guardedSetServers(): unknown {
    throw ctx.deny('resolver', 'setServers', 'changing the DNS servers (queries would go wherever they point)', 'handle');
  });
}

/** Guard the network handles; `binding` is process.binding as it was before the guard forbade these names. */
export function installHandleHooks(ctx: GuardContext, binding: (name: string) => unknown): void {
  installTcp(ctx, binding);
  installPipe(ctx, binding);
  installUdp(ctx, binding);
  installCares(ctx, binding);
}
