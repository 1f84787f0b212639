/**
 * Exact decimal arithmetic for the write policy: a value is `n / 10^k` with a
 * BigInt `n`, so 64-bit integers, scales, offsets, limits and the exact value of
 * a float all compare without rounding. Pure functions.
 *
 * Two ways to read a JS number:
 * - `ofDouble`: its exact binary value (what a float register holds: 0.1 is
 *   0.1000000000000000055511151231257827021181583404541015625);
 * - `ofWritten`: the decimal a person wrote in a config or manifest (0.1 is 0.1;
 *   an integer beyond 2^53 is the integer the double is, 2^60 exactly).
 */
export interface Decimal {
  readonly n: bigint;
  /** Decimal places: the value is n / 10^k (k >= 0). */
  readonly k: number;
}

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/i;
const TEN = 10n;

function scaleUp(d: Decimal, k: number): bigint {
  return d.n * TEN ** BigInt(k - d.k);
}

/** Parse `-12`, `3.25`, `1e-7`, `1.5e+21`; undefined for anything else. */
export function parseDecimal(text: string): Decimal | undefined {
  const m = DECIMAL.exec(text);
  if (m === null) return undefined;
  const [, sign = '', int = '', frac = '', exp = '0'] = m;
  let n = BigInt(`${sign}${int}${frac}`);
  let k = frac.length - Number(exp);
  if (k < 0) {
    n *= TEN ** BigInt(-k);
    k = 0;
  }
  return { n, k };
}

/** The exact value of a finite double (throws RangeError for NaN/Infinity). */
export function ofDouble(x: number): Decimal {
  if (!Number.isFinite(x)) throw new RangeError(`${x} is not finite`);
  if (Number.isInteger(x)) return { n: BigInt(x), k: 0 };
  // x = m * 2^-e with an integer m: x * 2^e is exact for every e below 1075
  let e = 0;
  let m = x;
  while (!Number.isInteger(m)) {
    m *= 2;
    e += 1;
  }
  // m / 2^e = m * 5^e / 10^e
  return { n: BigInt(m) * 5n ** BigInt(e), k: e };
}

/** The decimal a person wrote, as JSON/YAML read it: the shortest decimal of the double (integers exactly). */
export function ofWritten(x: number): Decimal {
  if (!Number.isFinite(x)) throw new RangeError(`${x} is not finite`);
  if (Number.isInteger(x)) return { n: BigInt(x), k: 0 };
  const d = parseDecimal(String(x));
  if (d === undefined) throw new RangeError(`${x} has no decimal form`);
  return d;
}

export function ofBigInt(n: bigint): Decimal {
  return { n, k: 0 };
}

export function add(a: Decimal, b: Decimal): Decimal {
  const k = Math.max(a.k, b.k);
  return { n: scaleUp(a, k) + scaleUp(b, k), k };
}

export function mul(a: Decimal, b: Decimal): Decimal {
  return { n: a.n * b.n, k: a.k + b.k };
}

/** -1, 0 or 1, exactly. */
export function compare(a: Decimal, b: Decimal): number {
  const k = Math.max(a.k, b.k);
  const x = scaleUp(a, k);
  const y = scaleUp(b, k);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Plain decimal text without exponent or trailing zeros: `-250.0000000004`. */
export function toText(d: Decimal): string {
  const negative = d.n < 0n;
  let digits = (negative ? -d.n : d.n).toString();
  if (d.k > 0) {
    digits = digits.padStart(d.k + 1, '0');
    const int = digits.slice(0, digits.length - d.k);
    const frac = digits.slice(digits.length - d.k).replace(/0+$/, '');
    digits = frac === '' ? int : `${int}.${frac}`;
  }
  return negative && digits !== '0' ? `-${digits}` : digits;
}
