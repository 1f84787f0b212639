import {
  MapPrototypeGet, MapPrototypeSet, RealpathSync, SetPrototypeAdd, SetPrototypeHas, StringPrototypeCharCodeAt,
  StringPrototypeSlice, StringPrototypeToLowerCase, list, listFrom, listPush, newMap, newSet, type List,
} from './guard/primordials.js';
import { canonicalIp, ipValue, maskValue } from './ip.js';
import type { Endpoint, Manifest } from './manifest.js';

/** Lower case, no trailing dot: how host names are compared. */
export function normalizeHost(host: string): string {
  const lower = StringPrototypeToLowerCase(host);
  const n = lower.length;
  return n > 0 && StringPrototypeCharCodeAt(lower, n - 1) === 46 /* . */ ? StringPrototypeSlice(lower, 0, n - 1) : lower;
}

function resolvePath(path: string): string {
  try {
    return RealpathSync(path);
  } catch {
    return path; // not there (yet): compared as written
  }
}

/** Ports of an entry: null = any port. */
type Ports = Set<number> | null;

interface Block { readonly family: 4 | 6; readonly network: bigint; readonly prefix: number; readonly port: number | undefined }

function addPort(map: Map<string, Ports>, key: string, port: number | undefined): void {
  const known = MapPrototypeGet(map, key) as Ports | undefined;
  if (port === undefined) MapPrototypeSet(map, key, null);
  else if (known === undefined) MapPrototypeSet(map, key, newSet<number>(listOf(port)));
  else if (known !== null) SetPrototypeAdd(known, port);
}

function listOf<T>(value: T): List<T> {
  const l = list<T>();
  listPush(l, value);
  return l;
}

function portAllowed(map: Map<string, Ports>, key: string, port: number): boolean {
  const ports = MapPrototypeGet(map, key) as Ports | undefined;
  if (ports === undefined) return false;
  return ports === null || SetPrototypeHas(ports, port);
}

/**
 * What the manifest allows, as questions the guard and the renderers ask:
 * outbound connections (a host name only as named, an IP address or block by
 * address), DNS lookups (only of listed names), server ports, serial devices.
 *
 * The allow-list is compiled when the policy is made into private data (Maps,
 * Sets, lists with no prototype) that is only read through built-ins captured
 * before any dependency loaded (guard/primordials.ts): replacing
 * `Array.prototype.some`, `Set.prototype.has` or this class's methods later
 * changes no answer the armed guard gets (it keeps these functions, see
 * guard/index.ts).
 */
export class ConnectionPolicy {
  readonly #hosts = newMap<string, Ports>();
  readonly #ips = newMap<string, Ports>();
  readonly #blocks = list<Block>();
  readonly #tcp = newSet<number>();
  readonly #udp = newSet<number>();
  readonly #uarts = list<string>();
  readonly tcpServerPorts: ReadonlySet<number>;
  readonly udpServerPorts: ReadonlySet<number>;

  constructor(readonly manifest: Manifest) {
    // index loops over copies (no array iterator, nothing looked up on Array.prototype)
    const endpoints = listFrom(manifest.allowedConnections);
    for (let i = 0; i < endpoints.length; i++) this.#add(endpoints[i] as Endpoint);
    const tcp = listFrom(manifest.tcpServerPorts);
    for (let i = 0; i < tcp.length; i++) SetPrototypeAdd(this.#tcp, tcp[i]);
    const udp = listFrom(manifest.udpServerPorts);
    for (let i = 0; i < udp.length; i++) SetPrototypeAdd(this.#udp, udp[i]);
    const uarts = listFrom(manifest.uarts);
    for (let i = 0; i < uarts.length; i++) listPush(this.#uarts, uarts[i] as string);
    this.tcpServerPorts = new Set(manifest.tcpServerPorts);
    this.udpServerPorts = new Set(manifest.udpServerPorts);
  }

  #add(e: Endpoint): void {
    if (e.kind === 'host') addPort(this.#hosts, e.value, e.port);
    else if (e.kind === 'ip') addPort(this.#ips, `${e.family ?? 4}/${e.value}`, e.port);
    else {
      const family = e.family ?? 4;
      const prefix = e.prefix ?? 0;
      listPush(this.#blocks, { family, prefix, network: maskValue(ipValue(e.value, family), family, prefix), port: e.port });
    }
  }

  /** May the process connect to (or send to) `host` on `port`? `host` is a name or an IP literal. */
  allowsConnect(host: string, port: number): boolean {
    if (typeof host !== 'string' || typeof port !== 'number') return false;
    const ip = canonicalIp(host);
    if (ip === undefined) return portAllowed(this.#hosts, normalizeHost(host), port);
    if (portAllowed(this.#ips, `${ip.family}/${ip.address}`, port)) return true;
    const blocks = this.#blocks;
    if (blocks.length === 0) return false;
    const value = ipValue(ip.address, ip.family);
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i] as Block;
      if (b.family === ip.family && (b.port === undefined || b.port === port) && maskValue(value, b.family, b.prefix) === b.network) return true;
    }
    return false;
  }

  /** May `name` be looked up in DNS? Only names listed in AllowedConnections (a lookup is itself a message to the outside). */
  allowsLookup(name: string): boolean {
    if (typeof name !== 'string') return false;
    if (canonicalIp(name) !== undefined) return true; // an IP literal needs no query
    return MapPrototypeGet(this.#hosts, normalizeHost(name)) !== undefined;
  }

  allowsTcpListen(port: number): boolean {
    return SetPrototypeHas(this.#tcp, port);
  }

  allowsUdpBind(port: number): boolean {
    return port === 0 || SetPrototypeHas(this.#udp, port);
  }

  /** A serial device listed in `Uart`, compared after resolving symlinks (/dev/serial/by-id/… → /dev/ttyUSB0). */
  allowsSerial(path: string): boolean {
    if (typeof path !== 'string') return false;
    const uarts = this.#uarts;
    const real = resolvePath(path);
    for (let i = 0; i < uarts.length; i++) {
      const u = uarts[i] as string;
      if (u === path || resolvePath(u) === real) return true;
    }
    return false;
  }
}
