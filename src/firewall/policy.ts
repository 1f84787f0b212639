import { realpathSync } from 'node:fs';
import { canonicalIp, inBlock } from './ip.js';
import type { Endpoint, Manifest } from './manifest.js';

/** Lower case, no trailing dot: how host names are compared. */
export function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

function resolvePath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * What the manifest allows, as questions the guard and the renderers ask:
 * outbound connections (a host name only as named, an IP address or block by
 * address), DNS lookups (only of listed names), server ports, serial devices.
 */
export class ConnectionPolicy {
  private readonly hosts: readonly Endpoint[];
  private readonly addresses: readonly Endpoint[];
  readonly tcpServerPorts: ReadonlySet<number>;
  readonly udpServerPorts: ReadonlySet<number>;

  constructor(readonly manifest: Manifest) {
    this.hosts = manifest.allowedConnections.filter((e) => e.kind === 'host');
    this.addresses = manifest.allowedConnections.filter((e) => e.kind !== 'host');
    this.tcpServerPorts = new Set(manifest.tcpServerPorts);
    this.udpServerPorts = new Set(manifest.udpServerPorts);
  }

  /** May the process connect to (or send to) `host` on `port`? `host` is a name or an IP literal. */
  allowsConnect(host: string, port: number): boolean {
    const ip = canonicalIp(host);
    if (ip === undefined) {
      const name = normalizeHost(host);
      return this.hosts.some((e) => e.value === name && (e.port === undefined || e.port === port));
    }
    return this.addresses.some((e) => e.family === ip.family && (e.port === undefined || e.port === port)
      && (e.kind === 'ip' ? e.value === ip.address : inBlock(ip.address, e.value, ip.family, e.prefix ?? 0)));
  }

  /** May `name` be looked up in DNS? Only names listed in AllowedConnections (a lookup is itself a message to the outside). */
  allowsLookup(name: string): boolean {
    const host = normalizeHost(name);
    if (canonicalIp(host) !== undefined) return true; // an IP literal needs no query
    return this.hosts.some((e) => e.value === host);
  }

  allowsTcpListen(port: number): boolean {
    return this.tcpServerPorts.has(port);
  }

  allowsUdpBind(port: number): boolean {
    return port === 0 || this.udpServerPorts.has(port);
  }

  /** A serial device listed in `Uart`, compared after resolving symlinks (/dev/serial/by-id/… → /dev/ttyUSB0). */
  allowsSerial(path: string): boolean {
    const real = resolvePath(path);
    return this.manifest.uarts.some((u) => u === path || resolvePath(u) === real);
  }
}
