/**
 * JSON text → data, or one `line L, column C: …` problem on one line (V8's
 * multi-line `Unexpected token …, "…" is not valid JSON` cut to its first
 * clause). Shared by the config (a .json file) and the manifest.
 */
import { jsonErrorOffset } from './json-position.js';
import type { Parsed } from './endpoint.js';

export const at = (pos: { line: number; col: number }): string => `line ${pos.line}, column ${pos.col}`;

/** Line and column (1-based) of an offset into text. */
export function positionOf(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, col: (lines[lines.length - 1]?.length ?? 0) + 1 };
}

/** Deeper than this is no config or manifest (the config's deepest path is 6 levels). */
export const MAX_DEPTH = 32;

/** How deeply data nests (0 for a scalar), counted without recursion (a 1 MiB file may nest 500,000 deep). */
export function depthOf(data: unknown): number {
  let max = 0;
  const stack: { value: unknown; depth: number }[] = [{ value: data, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    max = Math.max(max, item.depth);
    if (typeof item.value === 'object' && item.value !== null && max <= MAX_DEPTH) {
      for (const v of Object.values(item.value)) stack.push({ value: v, depth: item.depth + 1 });
    }
  }
  return max;
}

/** A leading byte order mark is not content (editors on Windows write one). */
export function withoutBom(text: string): string {
  return text.startsWith('\uFEFF') ? text.slice(1) : text;
}

/** JSON.parse, its SyntaxError turned into one `line L, column C: …` problem (Node 20 gives the offset, or the scanner finds it). */
export function parseJsonText(text: string): Parsed<unknown> {
  try {
    const value = JSON.parse(text) as unknown;
    if (depthOf(value) > MAX_DEPTH) return { ok: false, problem: `(root): nested more than ${MAX_DEPTH} levels deep: no setting is that deep` };
    return { ok: true, value };
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    const stated = /at position (\d+)/.exec(err.message)?.[1];
    const offset = stated === undefined ? jsonErrorOffset(text) : Number(stated);
    const clause = err.message.replace(/ in JSON at position \d+.*$/s, '').replace(/, (?:\.\.\.)?".*is not valid JSON$/s, '');
    const first = clause.split('\n')[0] ?? clause;
    const what = offset >= text.length ? 'unexpected end of the file (an unclosed \'{\', \'[\' or string?)' : `not valid JSON: ${first}`;
    return { ok: false, problem: `${at(positionOf(text, offset))}: ${what}` };
  }
}
