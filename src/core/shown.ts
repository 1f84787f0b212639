/**
 * A value as an error message quotes it: control characters escaped (a raw
 * newline or NUL never breaks a message or a log line), at most a few dozen
 * characters (a 70,000-character value is not echoed whole), and a number that
 * is not finite named as such (JSON.stringify would say `null`).
 */

/** Quoted values are cut after this many characters, with '…'. */
export const SHOWN_CHARS = 80;

const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\0': '\\0' };

/** `'text'` with control characters escaped and cut after max characters. */
export function shownText(text: string, max = SHOWN_CHARS, quote = true): string {
  const chars = [...text];
  const cut = chars.length > max ? `${chars.slice(0, max).join('')}…` : text;
  const escaped = cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return quote ? `'${escaped}'` : escaped;
}

/** A number that is not finite, in words. */
export function nonFinite(n: number): string {
  return Number.isNaN(n) ? '.nan' : `${n > 0 ? '' : '-'}.inf, or a number too large to hold`;
}

/** Any value as a message shows it. */
export function shownValue(value: unknown): string {
  if (typeof value === 'string') return shownText(value);
  if (typeof value === 'number' && !Number.isFinite(value)) return nonFinite(value);
  const json = JSON.stringify(value) as string | undefined;
  return json === undefined ? String(value) : shownText(json, SHOWN_CHARS, false);
}

/** Paths (`a.b[2]`) of the numbers in data that are not finite (YAML .inf and .nan, or 1e400 in YAML or JSON). */
export function nonFinitePaths(data: unknown, path = '(root)', out: { path: string; value: number }[] = []): { path: string; value: number }[] {
  if (typeof data === 'number' && !Number.isFinite(data)) out.push({ path, value: data });
  else if (Array.isArray(data)) data.forEach((v, i) => nonFinitePaths(v, `${path === '(root)' ? '' : path}[${i}]`, out));
  else if (typeof data === 'object' && data !== null) {
    for (const [k, v] of Object.entries(data)) nonFinitePaths(v, path === '(root)' ? k : `${path}.${k}`, out);
  }
  return out;
}
