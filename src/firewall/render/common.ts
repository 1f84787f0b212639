/** What the nftables ruleset and the systemd drop-in share: the manifest's addresses in the forms both take. */
import { canonicalIp } from '../ip.js';
import type { Endpoint, Manifest } from '../manifest.js';

/** Host name → the addresses it resolves to now (A and AAAA). */
export type Resolutions = ReadonlyMap<string, readonly string[]>;

export interface Element { readonly family: 4 | 6; readonly block: string; readonly port?: number }

/** nft prints and takes IPv6 in the usual short form (the URL standard's serialisation is that form). */
export function compressV6(expanded: string): string {
  return new URL(`http://[${expanded}]/`).hostname.slice(1, -1);
}

function block(address: string, family: 4 | 6, prefix?: number): string {
  const full = family === 4 ? 32 : 128;
  const text = family === 6 ? compressV6(address) : address;
  return prefix === undefined || prefix === full ? text : `${text}/${prefix}`;
}

/** The manifest's IP addresses and CIDR blocks, with each entry's port. */
export function staticElements(manifest: Manifest): Element[] {
  return manifest.allowedConnections.filter((e) => e.kind !== 'host').map((e) => ({
    family: e.family as 4 | 6, block: block(e.value, e.family as 4 | 6, e.kind === 'cidr' ? e.prefix : undefined), ...(e.port === undefined ? {} : { port: e.port }),
  }));
}

/** The addresses the manifest's host names resolve to, with each entry's port. */
export function dnsElements(manifest: Manifest, resolved: Resolutions): Element[] {
  const out: Element[] = [];
  for (const e of hostEntries(manifest)) {
    for (const address of resolved.get(e.value) ?? []) {
      const ip = canonicalIp(address);
      if (ip === undefined) continue;
      out.push({ family: ip.family, block: block(ip.address, ip.family), ...(e.port === undefined ? {} : { port: e.port }) });
    }
  }
  return out;
}

/** The manifest's host-name entries. */
export function hostEntries(manifest: Manifest): (Endpoint & { kind: 'host' })[] {
  return manifest.allowedConnections.filter((x): x is Endpoint & { kind: 'host' } => x.kind === 'host');
}

/** The name servers' addresses by family, IPv6 in nft's short form. */
export function resolverAddresses(resolvers: readonly string[], family: 4 | 6): string[] {
  const out = new Set<string>();
  for (const r of resolvers) {
    const ip = canonicalIp(r);
    if (ip?.family === family) out.add(family === 6 ? compressV6(ip.address) : ip.address);
  }
  return [...out];
}
