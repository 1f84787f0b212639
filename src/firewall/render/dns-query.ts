/**
 * The DNS exception of the nftables ruleset, narrowed to the manifest's names:
 * a UDP query to a name server passes only when it is a plain query (QR=0,
 * OPCODE=0) with one question, no answer or authority records, at most the
 * size of that question plus an EDNS OPT record, and its QNAME is one of the
 * listed names (letters in either case) in class IN. The query type is not
 * looked at (A and AAAA both pass). The match reads the bytes after the UDP
 * header with nft raw payload expressions (`@th,OFFSET,LENGTH`), at most 16
 * bytes per compare.
 */

/** Bytes of the UDP header and of the DNS header before the question. */
const UDP_HEADER = 8;
const DNS_HEADER = 12;
/** QTYPE and QCLASS after the name. */
const QUESTION_TAIL = 4;
/** An EDNS(0) OPT record without options (root name, type, class, TTL, RDLENGTH): what `options edns0` adds. */
const EDNS_OPT = 11;
/** The widest compare nft makes in one expression (one 16-byte register). */
const CHUNK = 16;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** A host name fit for a DNS question (lower case, labels of 1–63 letters, digits or hyphens, at most 253 characters), or undefined. */
export function dnsName(name: string): string | undefined {
  const n = name.toLowerCase().replace(/\.$/, '');
  return n.length > 0 && n.length <= 253 && n.split('.').every((l) => LABEL.test(l)) ? n : undefined;
}

/** The wire form of a name (RFC 1035 §3.1): each label after its length byte, then a zero byte. */
export function wireName(name: string): Buffer {
  const parts = name.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'ascii')]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

function isLetter(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
}

function hex(bytes: readonly number[]): string {
  return `0x${Buffer.from(bytes).toString('hex')}`;
}

/** One compare of the query's bytes from `offset` (relative to the transport header). */
export interface QueryCompare {
  /** Offset in bytes from the start of the UDP header. */
  readonly offset: number;
  /** The expected bytes, letters upper-cased… */
  readonly value: readonly number[];
  /** …and the mask applied first: 0xdf on letters (either case matches), 0xff elsewhere. */
  readonly mask: readonly number[];
}

/** The compares that recognise `name` as the question of a query (name, then QCLASS IN). */
export function questionCompares(name: string): QueryCompare[] {
  const wire = [...wireName(name), 0x00, 0x01]; // QCLASS IN follows QTYPE; QTYPE itself is skipped below
  const out: QueryCompare[] = [];
  const nameBytes = wire.length - 2;
  for (let at = 0; at < nameBytes; at += CHUNK) {
    const bytes = wire.slice(at, Math.min(at + CHUNK, nameBytes));
    const mask = bytes.map((b) => (isLetter(b) ? 0xdf : 0xff));
    out.push({ offset: UDP_HEADER + DNS_HEADER + at, value: bytes.map((b, i) => b & (mask[i] ?? 0xff)), mask });
  }
  out.push({ offset: UDP_HEADER + DNS_HEADER + nameBytes + 2, value: [0x00, 0x01], mask: [0xff, 0xff] });
  return out;
}

/** The largest UDP length (header included) of a query for `name`: the question and at most an option-less OPT record. */
export function maxQueryLength(name: string): number {
  return UDP_HEADER + DNS_HEADER + wireName(name).length + QUESTION_TAIL + EDNS_OPT;
}

function compareText(c: QueryCompare): string {
  const masked = c.mask.some((m) => m !== 0xff) ? ` & ${hex(c.mask)}` : '';
  return `@th,${c.offset * 8},${c.value.length * 8}${masked} == ${hex(c.value)}`;
}

/**
 * The nft match (without verdict) of a UDP DNS query for `name`: QR=0 and
 * OPCODE=0 (`@th,80,8 & 0xf8`), QDCOUNT=1, ANCOUNT=NSCOUNT=0, a bounded length,
 * then the question.
 */
export function queryMatch(name: string): string {
  return [
    `udp length <= ${maxQueryLength(name)}`,
    '@th,80,8 & 0xf8 == 0x0',
    '@th,96,16 == 0x1',
    '@th,112,32 == 0x0',
    ...questionCompares(name).map(compareText),
  ].join(' ');
}
