/**
 * The manifest as an nftables ruleset (`nft -f`). It holds when the process is
 * subverted (native code, a child that escaped the in-process guard, an
 * inspector opened by injected code).
 */
import type { Manifest } from '../manifest.js';
import { dnsElements, hostEntries, resolverAddresses, staticElements, type Element, type Resolutions } from './common.js';
import { dnsName, queryMatch } from './dns-query.js';

export interface NftOptions {
  /** Whose traffic is filtered: the service user (name or uid; default `guardian`)… */
  readonly user?: string | number;
  /** …or the service's cgroup v2 path (`system.slice/guardian.service`), which also filters inbound on input. */
  readonly cgroup?: string;
  readonly resolved: Resolutions;
  /** The DNS servers the resolver uses (/etc/resolv.conf): queries for the manifest's names may go to them on UDP port 53. */
  readonly resolvers: readonly string[];
  /** The resolver's search domains (/etc/resolv.conf `search`/`domain`): `<name>.<domain>` is queried too for each listed name. */
  readonly search?: readonly string[];
  /** Shown in the header comment. */
  readonly source: string;
}

export const NFT_TABLE = 'guardian';

/** The named counters of the table, in the order they are declared. */
export const NFT_COUNTERS = ['allowed_out', 'denied_out', 'denied_in', 'allowed_dns', 'denied_dns'] as const;

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
 * The names the service may look up: each host name of the manifest and, for
 * each search domain, that name under it (the stub resolver tries those too).
 */
export function queryNames(manifest: Manifest, search: readonly string[] = []): string[] {
  const domains = search.map(dnsName).filter((d): d is string => d !== undefined);
  const names = new Set<string>();
  for (const host of hostEntries(manifest).map((e) => e.value)) {
    names.add(host);
    for (const d of domains) {
      const full = dnsName(`${host}.${d}`);
      if (full !== undefined) names.add(full);
    }
  }
  return [...names].sort();
}

/**
 * Server side, in the output hook where the owner of a packet is known: the
 * SYN-ACK of a listening TCP socket and any reply of a TCP or UDP socket to a
 * connection someone else opened leave only from the server ports; a socket
 * listening on any other port (an inspector, a bind to port 0) never completes
 * a handshake or answers a datagram (`denied_in`). Ahead of the conntrack
 * shortcut, so an established flow cannot carry them either.
 */
const SERVER_SIDE = [
  '    tcp flags & (syn | ack) == syn | ack tcp sport != @tcp_in counter name denied_in drop',
  '    ct direction reply meta l4proto tcp tcp sport != @tcp_in counter name denied_in drop',
  '    ct direction reply meta l4proto udp udp sport != @udp_in counter name denied_in drop',
];

/**
 * DNS: every UDP datagram to a name server's port 53 goes through the query
 * check (also inside an established flow: a socket with one allowed answer
 * must not carry other names after it); TCP to port 53 is refused (the
 * answers for a few A/AAAA names fit a UDP datagram).
 */
function dnsRules(names: readonly string[]): string[] {
  return [
    '    ip daddr @resolvers4 udp dport 53 jump dns_query',
    '    ip6 daddr @resolvers6 udp dport 53 jump dns_query',
    '    ip daddr @resolvers4 tcp dport 53 counter name denied_dns reject with tcp reset',
    '    ip6 daddr @resolvers6 tcp dport 53 counter name denied_dns reject with tcp reset',
  ].concat(names.length === 0 ? ['    # (no host names in the manifest: no lookups)'] : []);
}

/**
 * The nftables ruleset: table `inet guardian`, replaced as a whole when loaded
 * again. Outbound from the service only to the manifest's addresses and
 * blocks (with their ports), to the current addresses of its host names (sets
 * dns4/dns6, refreshed by `guardian firewall apply`), and DNS queries for its
 * names to the name servers; everything else it sends is rejected and counted
 * (`denied_out`, `denied_dns`). Its sockets answer only on AllowedTcpServerPorts
 * / AllowedUdpServerPorts (`denied_in`); with a cgroup, inbound packets to other
 * ports of its sockets are refused on input as well.
 */
export function renderNftables(manifest: Manifest, opts: NftOptions): string {
  const statics = staticElements(manifest);
  const dns = dnsElements(manifest, opts.resolved);
  const names = queryNames(manifest, opts.search);
  const { match, cgroup } = owner(opts);
  const lines = [
    `# Generated by \`guardian firewall render --nftables\` from ${opts.source} (${manifest.name}); do not edit.`,
    `# Load with \`nft -f\` (or \`guardian firewall apply\`, which also keeps the dns sets current).`,
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    ...NFT_COUNTERS.map((c) => `  counter ${c} { }`),
    ...SETS.map((s) => set(setName(s.prefix, s.family, s.ported), setType(s.family, s.ported), elements(s.prefix === 'static' ? statics : dns, s.family, s.ported))),
    set('resolvers4', 'ipv4_addr', resolverAddresses(opts.resolvers, 4), false),
    set('resolvers6', 'ipv6_addr', resolverAddresses(opts.resolvers, 6), false),
    set('tcp_in', 'inet_service', manifest.tcpServerPorts.map(String), false),
    set('udp_in', 'inet_service', manifest.udpServerPorts.map(String), false),
    '',
    '  chain output {',
    '    type filter hook output priority filter; policy accept;',
    `    ${match} jump guardian_out`,
    '  }',
    '',
    '  chain guardian_out {',
    ...SERVER_SIDE,
    ...dnsRules(names),
    '    ct state established,related accept',
    ...(['static', 'dns'] as const).flatMap((prefix) => [
      `    ip daddr @${prefix}4 counter name allowed_out accept`,
      `    meta l4proto { tcp, udp } ip daddr . th dport @${prefix}4_port counter name allowed_out accept`,
      `    ip6 daddr @${prefix}6 counter name allowed_out accept`,
      `    meta l4proto { tcp, udp } ip6 daddr . th dport @${prefix}6_port counter name allowed_out accept`,
    ]),
    '    counter name denied_out reject with icmpx admin-prohibited',
    '  }',
    '',
    '  # a query for one of the names (any letter case, any query type); nothing else',
    '  chain dns_query {',
    ...names.map((n) => `    ${queryMatch(n)} counter name allowed_dns accept # ${n}`),
    '    counter name denied_dns reject with icmpx admin-prohibited',
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
      '  # inbound by user: the owner of a socket is not known on input, so the server side is held',
      '  # on output above (no handshake, no reply from another port); render with --cgroup to refuse',
      '  # the packets on input too',
    ]),
    '}',
    '',
  ];
  return lines.join('\n');
}

/**
 * An `nft -f` transaction that replaces the dns sets' contents and the name
 * servers (the refresh of `guardian firewall apply --watch`).
 */
export function renderDnsRefresh(manifest: Manifest, resolved: Resolutions, resolvers?: readonly string[]): string {
  const dns = dnsElements(manifest, resolved);
  const lines: string[] = [];
  const replace = (name: string, items: readonly string[]): void => {
    lines.push(`flush set inet ${NFT_TABLE} ${name}`);
    if (items.length > 0) lines.push(`add element inet ${NFT_TABLE} ${name} { ${items.join(', ')} }`);
  };
  for (const s of SETS.filter((x) => x.prefix === 'dns')) replace(setName('dns', s.family, s.ported), elements(dns, s.family, s.ported));
  if (resolvers !== undefined) {
    replace('resolvers4', resolverAddresses(resolvers, 4));
    replace('resolvers6', resolverAddresses(resolvers, 6));
  }
  return `${lines.join('\n')}\n`;
}
