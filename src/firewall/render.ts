/**
 * The OS layer of the manifest firewall: the same manifest rendered as an
 * nftables ruleset and as a systemd drop-in. These hold when the process is
 * subverted (native code, a child that escaped the in-process guard).
 */
import { isIP } from 'node:net';
import { canonicalIp } from './ip.js';
import type { Endpoint, Manifest } from './manifest.js';

/** Host name → the addresses it resolves to now (A and AAAA). */
export type Resolutions = ReadonlyMap<string, readonly string[]>;

export interface NftOptions {
  /** Whose traffic is filtered: the service user (name or uid; default `guardian`)… */
  readonly user?: string | number;
  /** …or the service's cgroup v2 path (`system.slice/guardian.service`), which also filters inbound. */
  readonly cgroup?: string;
  readonly resolved: Resolutions;
  /** The DNS servers the resolver uses (/etc/resolv.conf): port 53 to them stays open for lookups. */
  readonly resolvers: readonly string[];
  /** Shown in the header comment. */
  readonly source: string;
}

export const NFT_TABLE = 'guardian';

interface Element { readonly family: 4 | 6; readonly block: string; readonly port?: number }

function block(address: string, family: 4 | 6, prefix?: number): string {
  const full = family === 4 ? 32 : 128;
  const text = family === 6 ? compressV6(address) : address;
  return prefix === undefined || prefix === full ? text : `${text}/${prefix}`;
}

/** nft prints and takes IPv6 in the usual short form (the URL standard's serialisation is that form). */
function compressV6(expanded: string): string {
  return new URL(`http://[${expanded}]/`).hostname.slice(1, -1);
}

function staticElements(manifest: Manifest): Element[] {
  return manifest.allowedConnections.filter((e) => e.kind !== 'host').map((e) => ({
    family: e.family as 4 | 6, block: block(e.value, e.family as 4 | 6, e.kind === 'cidr' ? e.prefix : undefined), ...(e.port === undefined ? {} : { port: e.port }),
  }));
}

/** The addresses the manifest's host names resolve to, with each entry's port. */
export function dnsElements(manifest: Manifest, resolved: Resolutions): Element[] {
  const out: Element[] = [];
  for (const e of manifest.allowedConnections.filter((x): x is Endpoint & { kind: 'host' } => x.kind === 'host')) {
    for (const address of resolved.get(e.value) ?? []) {
      const ip = canonicalIp(address);
      if (ip === undefined) continue;
      out.push({ family: ip.family, block: block(ip.address, ip.family), ...(e.port === undefined ? {} : { port: e.port }) });
    }
  }
  return out;
}

function elements(list: readonly Element[], family: 4 | 6, ported: boolean): string[] {
  const seen = new Set<string>();
  for (const e of list) {
    if (e.family !== family || (e.port !== undefined) !== ported) continue;
    seen.add(ported ? `${e.block} . ${String(e.port)}` : e.block);
  }
  return [...seen];
}

function set(name: string, type: string, items: readonly string[], interval = true): string {
  const flags = interval ? ' flags interval;' : '';
  return `  set ${name} { type ${type};${flags}${items.length === 0 ? '' : ` elements = { ${items.join(', ')} };`} }`;
}

const SETS: readonly { readonly prefix: 'static' | 'dns'; readonly family: 4 | 6; readonly ported: boolean }[] = (['static', 'dns'] as const).flatMap((prefix) =>
  ([4, 6] as const).flatMap((family) => [false, true].map((ported) => ({ prefix, family, ported }))));

function setName(prefix: string, family: 4 | 6, ported: boolean): string {
  return `${prefix}${family}${ported ? '_port' : ''}`;
}

function setType(family: 4 | 6, ported: boolean): string {
  const addr = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
  return ported ? `${addr} . inet_service` : addr;
}

function owner(opts: NftOptions): { match: string; cgroup: boolean } {
  if (opts.cgroup !== undefined) {
    const level = opts.cgroup.split('/').filter((p) => p !== '').length;
    return { match: `socket cgroupv2 level ${level} "${opts.cgroup}"`, cgroup: true };
  }
  const user = opts.user ?? 'guardian';
  return { match: `meta skuid ${typeof user === 'number' ? String(user) : `"${user}"`}`, cgroup: false };
}

/**
 * The nftables ruleset (`nft -f`): table `inet guardian`, replaced as a whole
 * when loaded again. Outbound from the service only to the manifest's
 * addresses and blocks (with their ports), to the current addresses of its
 * host names (sets dns4/dns6, refreshed by `guardian firewall apply`), and to
 * the DNS servers on port 53; everything else it sends is rejected and
 * counted (`denied_out`). With a cgroup, inbound to the service's sockets is
 * allowed only on AllowedTcpServerPorts / AllowedUdpServerPorts (`denied_in`).
 */
export function renderNftables(manifest: Manifest, opts: NftOptions): string {
  const statics = staticElements(manifest);
  const dns = dnsElements(manifest, opts.resolved);
  const resolvers4 = opts.resolvers.filter((r) => isIP(r) === 4);
  const resolvers6 = opts.resolvers.filter((r) => isIP(r) === 6).map((r) => compressV6(canonicalIp(r)?.address ?? r));
  const { match, cgroup } = owner(opts);
  const lines = [
    `# Generated by \`guardian firewall render --nftables\` from ${opts.source} (${manifest.name}); do not edit.`,
    `# Load with \`nft -f\` (or \`guardian firewall apply\`, which also keeps the dns sets current).`,
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    '  counter allowed_out { }',
    '  counter denied_out { }',
    '  counter denied_in { }',
    ...SETS.map((s) => set(setName(s.prefix, s.family, s.ported), setType(s.family, s.ported), elements(s.prefix === 'static' ? statics : dns, s.family, s.ported))),
    set('resolvers4', 'ipv4_addr', resolvers4, false),
    set('resolvers6', 'ipv6_addr', resolvers6, false),
    set('tcp_in', 'inet_service', manifest.tcpServerPorts.map(String), false),
    set('udp_in', 'inet_service', manifest.udpServerPorts.map(String), false),
    '',
    '  chain output {',
    '    type filter hook output priority filter; policy accept;',
    `    ${match} jump guardian_out`,
    '  }',
    '',
    '  chain guardian_out {',
    '    ct state established,related accept',
    ...(['static', 'dns'] as const).flatMap((prefix) => [
      `    ip daddr @${prefix}4 counter name allowed_out accept`,
      `    meta l4proto { tcp, udp } ip daddr . th dport @${prefix}4_port counter name allowed_out accept`,
      `    ip6 daddr @${prefix}6 counter name allowed_out accept`,
      `    meta l4proto { tcp, udp } ip6 daddr . th dport @${prefix}6_port counter name allowed_out accept`,
    ]),
    '    ip daddr @resolvers4 meta l4proto { tcp, udp } th dport 53 accept',
    '    ip6 daddr @resolvers6 meta l4proto { tcp, udp } th dport 53 accept',
    '    counter name denied_out reject with icmpx admin-prohibited',
    '  }',
    ...(cgroup ? [
      '',
      '  chain input {',
      '    type filter hook input priority filter; policy accept;',
      '    ct state established,related accept',
      `    ${match} tcp dport != @tcp_in counter name denied_in reject with tcp reset`,
      `    ${match} udp dport != @udp_in counter name denied_in reject with icmpx port-unreachable`,
      '  }',
    ] : [
      '  # inbound: matching the service by user is not possible on input; the drop-in\'s',
      '  # SocketBindAllow= and the in-process guard hold the server ports (or render with --cgroup)',
    ]),
    '}',
    '',
  ];
  return lines.join('\n');
}

/** An `nft -f` transaction that replaces the dns sets' contents (the refresh of `guardian firewall apply`). */
export function renderDnsRefresh(manifest: Manifest, resolved: Resolutions): string {
  const dns = dnsElements(manifest, resolved);
  const lines: string[] = [];
  for (const s of SETS.filter((x) => x.prefix === 'dns')) {
    const name = setName('dns', s.family, s.ported);
    lines.push(`flush set inet ${NFT_TABLE} ${name}`);
    const items = elements(dns, s.family, s.ported);
    if (items.length > 0) lines.push(`add element inet ${NFT_TABLE} ${name} { ${items.join(', ')} }`);
  }
  return `${lines.join('\n')}\n`;
}

export interface SystemdOptions {
  readonly resolved: Resolutions;
  readonly resolvers: readonly string[];
  readonly source: string;
  /** Device nodes besides the manifest's Uart entries (the TPM). */
  readonly devices: readonly string[];
}

/**
 * A drop-in for guardian.service (`/etc/systemd/system/guardian.service.d/firewall.conf`):
 * IP traffic only to the manifest's addresses, the current addresses of its host
 * names and the DNS servers (systemd filters by address, not port: nftables adds
 * the ports); explicit bind() only to the server ports; device nodes only the
 * `Uart` entries and the TPM.
 */
export function renderSystemd(manifest: Manifest, opts: SystemdOptions): string {
  const addresses = [...new Set([
    ...staticElements(manifest).map((e) => e.block),
    ...dnsElements(manifest, opts.resolved).map((e) => e.block),
    ...opts.resolvers,
  ])];
  const hosts = manifest.allowedConnections.filter((e) => e.kind === 'host');
  const binds = [...manifest.tcpServerPorts.map((p) => `tcp:${p}`), ...manifest.udpServerPorts.map((p) => `udp:${p}`)];
  const lines = [
    `# Generated by \`guardian firewall render --systemd\` from ${opts.source} (${manifest.name}); do not edit.`,
    '# Install as /etc/systemd/system/guardian.service.d/firewall.conf, then `systemctl daemon-reload`.',
    ...(hosts.length === 0 ? [] : [`# Host names resolved when rendered: ${hosts.map((h) => h.value).join(', ')}; render again when their addresses change.`]),
    '[Service]',
    'IPAddressDeny=any',
    ...(addresses.length === 0 ? [] : [`IPAddressAllow=${addresses.join(' ')}`]),
    'SocketBindDeny=any',
    ...binds.map((b) => `SocketBindAllow=${b}`),
    'DevicePolicy=closed',
    'DeviceAllow=',
    ...[...manifest.uarts, ...opts.devices].map((d) => `DeviceAllow=${d} rw`),
    '',
  ];
  return lines.join('\n');
}
