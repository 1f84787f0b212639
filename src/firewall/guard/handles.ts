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

type Wrapper = (original: Fn) => Fn;

/** Replace a method, keeping the original for the wrapper only. */
function wrap(target: unknown, name: string, make: Wrapper): void {
  const object = rec(target);
  const original = object[name];
  if (typeof original !== 'function') throw new TypeError(`${name} is not a function here`);
  object[name] = make(original as Fn);
}

function prototypeOf(binding: unknown, className: string): Record<string, unknown> {
  return rec(rec(rec(binding)[className])['prototype']);
}

function installTcp(ctx: GuardContext, binding: (name: string) => unknown): void {
  const tcp = prototypeOf(binding('tcp_wrap'), 'TCP');
  const getsockname = tcp['getsockname'] as Fn; // the original: a replaced getsockname cannot fake the port
  for (const name of ['connect', 'connect6']) {
    wrap(tcp, name, (original) => function guardedTcpConnect(this: unknown, ...args: unknown[]): unknown {
      const [, address, port] = args;
      if (!ctx.allowsAddress(String(address), Number(port))) {
        ctx.deny('connect', `${String(address)}:${String(port)}`, `connection to ${String(address)}:${String(port)}: not in the manifest's AllowedConnections`, 'handle');
        return UV_EACCES;
      }
      return original.apply(this, args);
    });
  }
  wrap(tcp, 'listen', (original) => function guardedTcpListen(this: unknown, ...args: unknown[]): unknown {
    const out: Record<string, unknown> = {};
    const err = getsockname.call(this, out);
    const port = err === 0 ? Number(out['port']) : Number.NaN;
    if (!ctx.policy.allowsTcpListen(port)) {
      ctx.deny('listen', `tcp:${String(port)}`, `a TCP server on port ${String(port)} is not in the manifest's AllowedTcpServerPorts`, 'handle');
      return UV_EACCES;
    }
    return original.apply(this, args);
  });
}

function installPipe(ctx: GuardContext, binding: (name: string) => unknown): void {
  const pipe = prototypeOf(binding('pipe_wrap'), 'Pipe');
  // connect(req, path), bind(path), listen(backlog): no Unix socket, client or server
  for (const [name, kind] of [['connect', 'connect'], ['bind', 'listen'], ['listen', 'listen']] as const) {
    wrap(pipe, name, () => function guardedPipe(this: unknown, ...args: unknown[]): unknown {
      const path = typeof args[name === 'connect' ? 1 : 0] === 'string' ? String(args[name === 'connect' ? 1 : 0]) : '?';
      ctx.deny(kind, `unix:${path}`, `a Unix socket (${name} ${path})`, 'handle');
      return UV_EACCES;
    });
  }
}

function installUdp(ctx: GuardContext, binding: (name: string) => unknown): void {
  const udp = prototypeOf(binding('udp_wrap'), 'UDP');
  const refuse = (address: unknown, port: unknown): number => {
    ctx.deny('send', `${String(address)}:${String(port)}`, `UDP to ${String(address)}:${String(port)}: not in the manifest's AllowedConnections`, 'handle');
    return UV_EACCES;
  };
  for (const name of ['send', 'send6']) {
    // send(req, list, count, port, address, hasCallback); a connected socket's send(req, list, count, hasCallback) was checked at connect
    wrap(udp, name, (original) => function guardedUdpSend(this: unknown, ...args: unknown[]): unknown {
      const [, , , port, address] = args;
      if (typeof port === 'number' && !ctx.allowsAddress(String(address), port)) return refuse(address, port);
      return original.apply(this, args);
    });
  }
  for (const name of ['connect', 'connect6']) {
    wrap(udp, name, (original) => function guardedUdpConnect(this: unknown, ...args: unknown[]): unknown {
      const [address, port] = args;
      if (!ctx.allowsAddress(String(address), Number(port))) return refuse(address, port);
      return original.apply(this, args);
    });
  }
  for (const name of ['bind', 'bind6']) {
    wrap(udp, name, (original) => function guardedUdpBind(this: unknown, ...args: unknown[]): unknown {
      const port = Number(args[1] ?? 0);
      if (!ctx.policy.allowsUdpBind(port)) {
        ctx.deny('bind', `udp:${port}`, `a UDP server on port ${port} is not in the manifest's AllowedUdpServerPorts`, 'handle');
        return UV_EACCES;
      }
      return original.apply(this, args);
    });
  }
}

const QUERIES = ['queryAny', 'queryA', 'queryAaaa', 'queryCaa', 'queryCname', 'queryMx', 'queryNs', 'queryTxt', 'querySrv', 'queryPtr', 'queryNaptr', 'querySoa'];

function installCares(ctx: GuardContext, binding: (name: string) => unknown): void {
  const cares = binding('cares_wrap');
  // getaddrinfo(req, hostname, family, hints, order): dns.lookup, and so every connect by name
  wrap(cares, 'getaddrinfo', (original) => function guardedGetaddrinfo(this: unknown, ...args: unknown[]): unknown {
    const [req, hostname] = args;
    const name = String(hostname);
    if (!ctx.policy.allowsLookup(name)) {
      ctx.deny('lookup', name, `DNS lookup of ${name}: the name is not in the manifest's AllowedConnections`, 'handle');
      return UV_EACCES;
    }
    const request = rec(req);
    const oncomplete = request['oncomplete'];
    if (typeof oncomplete === 'function') {
      request['oncomplete'] = function remembered(this: unknown, err: unknown, addresses: unknown): unknown {
        if (err === 0 && Array.isArray(addresses)) ctx.remember(name, addresses.map(String));
        return (oncomplete as Fn).call(this, err, addresses);
      };
    }
    return original.apply(this, args);
  });
  wrap(cares, 'getnameinfo', () => function guardedGetnameinfo(...args: unknown[]): unknown {
    ctx.deny('lookup', String(args[1]), `reverse DNS lookup of ${String(args[1])}`, 'handle');
    return UV_EACCES;
  });
  const channel = prototypeOf(cares, 'ChannelWrap');
  for (const name of QUERIES) {
    wrap(channel, name, (original) => function guardedQuery(this: unknown, ...args: unknown[]): unknown {
      const query = String(args[1]);
      if (name === 'queryPtr' || !ctx.policy.allowsLookup(query)) {
        ctx.deny('lookup', query, `DNS query (${name}) for ${query}: the name is not in the manifest's AllowedConnections`, 'handle');
        return UV_EACCES;
      }
      return original.apply(this, args);
    });
  }
  wrap(channel, 'getHostByAddr', () => function guardedGetHostByAddr(...args: unknown[]): unknown {
    ctx.deny('lookup', String(args[1]), `reverse DNS lookup of ${String(args[1])}`, 'handle');
    return UV_EACCES;
  });
  wrap(channel, 'setServers', () => function guardedSetServers(...args: unknown[]): unknown {
    throw ctx.deny('resolver', JSON.stringify(args[0]), 'changing the DNS servers (queries would go wherever they point)', 'handle');
  });
}

/** Guard the network handles; `binding` is process.binding as it was before the guard forbade these names. */
export function installHandleHooks(ctx: GuardContext, binding: (name: string) => unknown): void {
  installTcp(ctx, binding);
  installPipe(ctx, binding);
  installUdp(ctx, binding);
  installCares(ctx, binding);
}
