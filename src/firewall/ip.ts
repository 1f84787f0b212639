import { isIP } from 'node:net';

/** The full, lower-case form of an IPv6 address (eight groups of four hex digits; an embedded IPv4 tail becomes two groups). */
export function expandV6(address: string): string {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

function toBigInt(address: string, family: 4 | 6): bigint {
  if (family === 4) return address.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  return expandV6(address).split(':').reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** The network address of `address/prefix`, in the form the manifest stores (dotted quad, or expanded IPv6). */
export function maskAddress(address: string, family: 4 | 6, prefix: number): string {
  const bits = family === 4 ? 32 : 128;
  const n = toBigInt(address, family);
  const masked = prefix === 0 ? 0n : (n >> BigInt(bits - prefix)) << BigInt(bits - prefix);
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((masked >> s) & 255n)).join('.');
  return Array.from({ length: 8 }, (_, i) => ((masked >> BigInt(112 - i * 16)) & 0xffffn).toString(16).padStart(4, '0')).join(':');
}

/**
 * An IP literal as it is compared with the manifest: IPv4 as a dotted quad,
 * an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address it is,
 * other IPv6 expanded; undefined when it is not an IP literal (a zone index
 * `%eth0` is dropped).
 */
export function canonicalIp(text: string): { family: 4 | 6; address: string } | undefined {
  const bare = text.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const family = isIP(bare) as 0 | 4 | 6;
  if (family === 0) return undefined;
  if (family === 4) return { family, address: bare };
  const full = expandV6(bare);
  if (full.startsWith('0000:0000:0000:0000:0000:ffff:')) {
    const n = toBigInt(full, 6) & 0xffffffffn;
    return { family: 4, address: [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.') };
  }
  return { family, address: full };
}

/** Whether `address` (canonical) lies in `network/prefix` (canonical network of the same family). */
export function inBlock(address: string, network: string, family: 4 | 6, prefix: number): boolean {
  return maskAddress(address, family, prefix) === network;
}
