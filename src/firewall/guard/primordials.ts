/* eslint-disable @typescript-eslint/unbound-method -- capturing methods unbound is what this module is for: each is only ever called through Reflect.apply or an uncurried `call` with an explicit receiver */
/**
 * The built-ins the guard's checks use, captured when this module is first
 * evaluated (the entry module loads the guard before any dependency). Code
 * that runs later can replace `Array.prototype.some`, `Set.prototype.has`,
 * `Function.prototype.apply`, a global `String` or `net.isIP`; the checks in
 * guard/, policy.ts and ip.ts call only these copies, "uncurried" (a bound
 * `call` of the original method: calling one looks nothing up), so such a
 * replacement neither changes an answer nor sees a native function pass by.
 *
 * Rules for check paths: no method calls on shared prototypes, no `for…of`,
 * spread or array destructuring (they run the array iterator), no `.apply` /
 * `.call`; new lists are `list()` (no prototype: an index setter planted on
 * Array.prototype is not run), new records are `record()`.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';

const { apply, construct, defineProperty, getPrototypeOf, ownKeys } = Reflect;
const setPrototypeOf = Object.setPrototypeOf;
const { bind, call } = Function.prototype;

/** A method as a plain function of (this, ...args), immune to later changes of its prototype and of Function.prototype. */
function uncurry<T, A extends unknown[], R>(fn: (this: T, ...args: A) => R): (self: T, ...args: A) => R {
  return apply(bind, call, [fn]) as (self: T, ...args: A) => R;
}

export const ReflectApply = apply;
export const ReflectConstruct = construct;
export const ReflectOwnKeys = ownKeys;
export const ObjectGetPrototypeOf = getPrototypeOf;
export const ObjectFreeze = Object.freeze;
export const ObjectCreate = Object.create;
export const ObjectGetOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
export const ArrayIsArray = Array.isArray;
export const NumberIsInteger = Number.isInteger;
export const StringCtor = String;
export const URLCtor = URL;
export const NumberCtor = Number;
export const BigIntCtor = BigInt;
export const NumberParseInt = Number.parseInt;
export const JSONStringify = JSON.stringify;
export const RealpathSync = realpathSync;
export const ReaddirSync = readdirSync;
export const ReadFileSync = readFileSync;
export const CreateHash = createHash;

export const StringPrototypeToLowerCase = uncurry(String.prototype.toLowerCase);
export const StringPrototypeSlice = uncurry(String.prototype.slice);
export const StringPrototypeIndexOf = uncurry(String.prototype.indexOf);
export const StringPrototypeLastIndexOf = uncurry(String.prototype.lastIndexOf);
export const StringPrototypeStartsWith = uncurry(String.prototype.startsWith);
export const StringPrototypeEndsWith = uncurry(String.prototype.endsWith);
export const StringPrototypeCharCodeAt = uncurry(String.prototype.charCodeAt);
export const StringPrototypePadStart = uncurry(String.prototype.padStart);
export const StringPrototypeTrim = uncurry(String.prototype.trim);
export const NumberPrototypeToString = uncurry(Number.prototype.toString);
export const BigIntPrototypeToString = uncurry(BigInt.prototype.toString);
/** RegExpBuiltinExec directly: unlike String#replace / #split / #match, it looks up nothing on RegExp.prototype. */
export const RegExpPrototypeExec = uncurry(RegExp.prototype.exec);
export const SetPrototypeHas = uncurry(Set.prototype.has as (this: ReadonlySet<unknown>, v: unknown) => boolean);
export const SetPrototypeAdd = uncurry(Set.prototype.add as (this: Set<unknown>, v: unknown) => Set<unknown>);
export const MapPrototypeGet = uncurry(Map.prototype.get as (this: ReadonlyMap<unknown, unknown>, k: unknown) => unknown);
export const MapPrototypeSet = uncurry(Map.prototype.set as (this: Map<unknown, unknown>, k: unknown, v: unknown) => Map<unknown, unknown>);
export const MapPrototypeHas = uncurry(Map.prototype.has as (this: ReadonlyMap<unknown, unknown>, k: unknown) => boolean);
export const MapPrototypeDelete = uncurry(Map.prototype.delete as (this: Map<unknown, unknown>, k: unknown) => boolean);
export const MapPrototypeKeys = uncurry(Map.prototype.keys as (this: ReadonlyMap<unknown, unknown>) => Iterator<unknown>);
export const MapIteratorPrototypeNext = uncurry((getPrototypeOf(new Map().keys()) as Iterator<unknown>).next as (this: Iterator<unknown>) => IteratorResult<unknown>);
export const MapPrototypeGetSize = uncurry((Object.getOwnPropertyDescriptor(Map.prototype, 'size') as { get: (this: ReadonlyMap<unknown, unknown>) => number }).get);
export const HashUpdate = uncurry(createHash('sha256').update as (this: ReturnType<typeof createHash>, data: Uint8Array) => ReturnType<typeof createHash>);
export const HashDigest = uncurry(createHash('sha256').digest as (this: ReturnType<typeof createHash>, enc: 'hex') => string);

/** A list without a prototype: indexed writes and reads never reach Array.prototype. Native code and Reflect.apply read it like any array. */
export interface List<T> { [i: number]: T; length: number }
export function list<T>(): List<T> {
  return setPrototypeOf([], null) as List<T>;
}
export function listPush<T>(l: List<T>, v: T): void {
  l[l.length] = v;
}
/** A copy of an array-like (own indices 0…length-1, each read once) as a list. */
export function listFrom<T>(source: { readonly length: number; readonly [i: number]: T }): List<T> {
  const out = list<T>();
  const n = source.length;
  for (let i = 0; i < n; i++) out[i] = source[i] as T;
  return out;
}
export function listIncludes<T>(l: List<T>, v: T): boolean {
  for (let i = 0; i < l.length; i++) if (l[i] === v) return true;
  return false;
}

/** A record without a prototype: a getter or setter planted on Object.prototype is never run for it. */
export function record(): Record<string, unknown> {
  return ObjectCreate(null) as Record<string, unknown>;
}

/** `text` split at every `sep` (a single character), without String#split (which looks up Symbol.split). */
export function splitOn(text: string, sep: string): List<string> {
  const out = list<string>();
  let from = 0;
  for (;;) {
    const at = StringPrototypeIndexOf(text, sep, from);
    if (at < 0) break;
    listPush(out, StringPrototypeSlice(text, from, at));
    from = at + 1;
  }
  listPush(out, StringPrototypeSlice(text, from));
  return out;
}

/**
 * Replace `name` on `target` for good: not writable, not configurable, so a
 * native function that leaked anyway cannot be put back, and the hook cannot be
 * swapped for another. Throws when the property cannot be redefined.
 */
export function pin(target: object, name: PropertyKey, value: unknown): void {
  if (!defineProperty(target, name, { value, writable: false, configurable: false, enumerable: true })) throw new TypeError(`${StringCtor(name)} cannot be pinned`);
}

/** A new set / map (their own methods are only ever called through the captured copies above). */
export const SetCtor = Set;
export const MapCtor = Map;
export function newSet<T>(values?: List<T>): Set<T> {
  const s = construct(SetCtor, []) as Set<T>;
  if (values !== undefined) for (let i = 0; i < values.length; i++) SetPrototypeAdd(s, values[i]);
  return s;
}
export function newMap<K, V>(): Map<K, V> {
  return construct(MapCtor, []) as Map<K, V>;
}

/** The last function among `args` (a callback), read by index. */
export function lastFunction(args: { readonly length: number; readonly [i: number]: unknown }): ((...a: unknown[]) => unknown) | undefined {
  for (let i = args.length - 1; i >= 0; i--) {
    const a = args[i];
    if (typeof a === 'function') return a as (...a: unknown[]) => unknown;
  }
  return undefined;
}

// net.isIP is not usable here: Node 20 tests its patterns with RegExp.prototype.test, which looks
// up `exec` on the pattern (replaceable). These are the same patterns, run by RegExpBuiltinExec.
const V4_SEG = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]\\d|\\d)';
const V4 = `(?:${V4_SEG}\\.){3}${V4_SEG}`;
const V6_SEG = '(?:[0-9a-fA-F]{1,4})';
const V4_RE = new RegExp(`^${V4}$`);
const V6_RE = new RegExp(`^(?:(?:${V6_SEG}:){7}(?:${V6_SEG}|:)|(?:${V6_SEG}:){6}(?:${V4}|:${V6_SEG}|:)|(?:${V6_SEG}:){5}(?::${V4}|(?::${V6_SEG}){1,2}|:)|`
  + `(?:${V6_SEG}:){4}(?:(?::${V6_SEG}){0,1}:${V4}|(?::${V6_SEG}){1,3}|:)|(?:${V6_SEG}:){3}(?:(?::${V6_SEG}){0,2}:${V4}|(?::${V6_SEG}){1,4}|:)|`
  + `(?:${V6_SEG}:){2}(?:(?::${V6_SEG}){0,3}:${V4}|(?::${V6_SEG}){1,5}|:)|(?:${V6_SEG}:){1}(?:(?::${V6_SEG}){0,4}:${V4}|(?::${V6_SEG}){1,6}|:)|`
  + `(?::(?:(?::${V6_SEG}){0,5}:${V4}|(?::${V6_SEG}){1,7}|:)))(?:%[0-9a-zA-Z-.:]{1,})?$`);

/** net.isIP, with the patterns run through the captured RegExp#exec only. */
export function IsIP(text: unknown): 0 | 4 | 6 {
  if (typeof text !== 'string') return 0;
  if (RegExpPrototypeExec(V4_RE, text) !== null) return 4;
  if (RegExpPrototypeExec(V6_RE, text) !== null) return 6;
  return 0;
}
