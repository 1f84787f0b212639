/**
 * IP literals as the manifest and the guard compare them. On the guard's check
 * path, so only captured built-ins (guard/primordials.ts) are used here.
 */
import {
  BigIntCtor, IsIP, NumberCtor, NumberParseInt, NumberPrototypeToString, StringPrototypeCharCodeAt, StringPrototypeIndexOf,
  StringPrototypeLastIndexOf, StringPrototypePadStart, StringPrototypeSlice, StringPrototypeToLowerCase, splitOn,
} from './guard/primordials.js';

/** A dotted quad (already accepted by isIP) as a number. */
function v4Value(text: string): bigint {
  let value = 0n;
  let octet = 0;
  for (let i = 0; i < text.length; i++) {
    const c = StringPrototypeCharCodeAt(text, i);
    if (c === 46 /* . */) {
      value = (value << 8n) | BigIntCtor(octet);
      octet = 0;
    } else {
      octet = octet * 10 + (c - 48);
    }
  }
  return (value << 8n) | BigIntCtor(octet);
}

function groupsValue(part: string, into: bigint): { value: bigint; count: number } {
  if (part === '') return { value: into, count: 0 };
  const groups = splitOn(part, ':');
  let value = into;
  for (let i = 0; i < groups.length; i++) value = (value << 16n) | BigIntCtor(NumberParseInt(groups[i] ?? '0', 16));
  return { value, count: groups.length };
}

/** An IPv6 address (accepted by isIP, no zone) as a number. */
function v6Value(address: string): bigint {
  let text = StringPrototypeToLowerCase(address);
  let v4 = 0n;
  if (StringPrototypeIndexOf(text, '.') >= 0) {
    const colon = StringPrototypeLastIndexOf(text, ':');
    v4 = v4Value(StringPrototypeSlice(text, colon + 1));
    text = `${StringPrototypeSlice(text, 0, colon + 1)}0:0`;
  }
  const gap = StringPrototypeIndexOf(text, '::');
  if (gap < 0) return groupsValue(text, 0n).value | v4;
  const head = groupsValue(StringPrototypeSlice(text, 0, gap), 0n);
  const tailText = StringPrototypeSlice(text, gap + 2);
  const tailCount = groupsValue(tailText, 0n).count;
  const padded = head.value << BigIntCtor(16 * (8 - head.count - tailCount));
  return groupsValue(tailText, padded).value | v4;
}

function v6Text(value: bigint): string {
  let text = '';
  for (let i = 0; i < 8; i++) {
    const group = StringPrototypePadStart(NumberPrototypeToString(NumberCtor((value >> BigIntCtor(112 - i * 16)) & 0xffffn), 16), 4, '0');
    text = i === 0 ? group : `${text}:${group}`;
  }
  return text;
}

function v4Text(value: bigint): string {
  return `${(value >> 24n) & 255n}.${(value >> 16n) & 255n}.${(value >> 8n) & 255n}.${value & 255n}`;
}

/** The full, lower-case form of an IPv6 address (eight groups of four hex digits; an embedded IPv4 tail becomes two groups). */
export function expandV6(address: string): string {
  return v6Text(v6Value(address));
}

/** An address of the family as a number (a canonical or any valid form). */
export function ipValue(address: string, family: 4 | 6): bigint {
  return family === 4 ? v4Value(address) : v6Value(address);
}

/** `value` with all but the first `prefix` bits cleared. */
export function maskValue(value: bigint, family: 4 | 6, prefix: number): bigint {
  const bits = family === 4 ? 32 : 128;
  if (prefix <= 0) return 0n;
  const shift = BigIntCtor(bits - prefix);
  return (value >> shift) << shift;
}

/** The network address of `address/prefix`, in the form the manifest stores (dotted quad, or expanded IPv6). */
export function maskAddress(address: string, family: 4 | 6, prefix: number): string {
  const masked = maskValue(ipValue(address, family), family, prefix);
  return family === 4 ? v4Text(masked) : v6Text(masked);
}

/**
 * An IP literal as it is compared with the manifest: IPv4 as a dotted quad,
 * an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address it is,
 * other IPv6 expanded; undefined when it is not an IP literal. Only what
 * net.isIP accepts is a literal (optionally in brackets); a zone index
 * (`fe80::1%eth0`) is dropped from IPv6 only — `127.0.0.2%x.example` is a name.
 */
export function canonicalIp(text: string): { family: 4 | 6; address: string } | undefined {
  const n = text.length;
  const bare = n >= 2 && StringPrototypeCharCodeAt(text, 0) === 91 /* [ */ && StringPrototypeCharCodeAt(text, n - 1) === 93 /* ] */ ? StringPrototypeSlice(text, 1, n - 1) : text;
  const family = IsIP(bare);
  if (family === 4) return { family: 4, address: bare };
  if (family !== 6) return undefined;
  const zone = StringPrototypeIndexOf(bare, '%');
  const value = v6Value(zone < 0 ? bare : StringPrototypeSlice(bare, 0, zone));
  if (value >> 32n === 0xffffn) return { family: 4, address: v4Text(value & 0xffffffffn) };
  return { family: 6, address: v6Text(value) };
}

/** Whether `address` (canonical) lies in `network/prefix` (canonical network of the same family). */
export function inBlock(address: string, network: string, family: 4 | 6, prefix: number): boolean {
  return maskAddress(address, family, prefix) === network;
}
