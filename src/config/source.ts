/**
 * Config text → data, and problems → where they are in the file. A `.json` file
 * is read with JSON.parse (a trailing comma is an error, with its line and
 * column); anything else as YAML 1.2. Both are also read by the YAML parser,
 * which keeps every node's offset (JSON is YAML 1.2): that is how a problem at
 * `buses[1].devices[0].points[2].type` gets its `line 14, column 11: ` prefix.
 */
import { isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { at, parseJsonText, positionOf, withoutBom } from '../core/json-text.js';
import { duplicateKeyProblems, readYaml } from '../core/yaml-text.js';
import { ConfigError } from './error.js';

export type ConfigFormat = 'json' | 'yaml';

/** `.json` (any case) is JSON; everything else is YAML. */
export function formatOf(source: string): ConfigFormat {
  return /\.json$/i.test(source) ? 'json' : 'yaml';
}

export const EMPTY_FILE = 'the file is empty (no settings, only white space or comments): start from config/example.yaml';

export interface ConfigSource {
  /** The document as plain data. */
  readonly data: unknown;
  /** `path: problem` → `line L, column C: path: problem` where the path (or its nearest parent) is in the file. */
  readonly locate: (problem: string) => string;
}

/** `buses[0].devices[1].name` → ['buses', 0, 'devices', 1, 'name']; `(root)` → []. */
export function pathSegments(path: string): (string | number)[] {
  if (path === '(root)') return [];
  return [...path.matchAll(/\[(\d+)\]|([^.[\]]+)/g)].map((m) => (m[1] === undefined ? m[2] ?? '' : Number(m[1])));
}

/** The offset of the node at a path, or of its deepest parent in the file (a map key's own offset for a map entry). */
function offsetOf(doc: Document, segments: readonly (string | number)[]): number | undefined {
  let node: unknown = doc.contents;
  let offset = isScalar(node) || isMap(node) || isSeq(node) ? (node as Node).range?.[0] : undefined;
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) break;
      offset = isScalar(pair.key) ? pair.key.range?.[0] : offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      if (!(isScalar(item) || isMap(item) || isSeq(item))) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}

function locator(text: string, doc: Document): (problem: string) => string {
  return (problem) => {
    const sep = problem.indexOf(': ');
    if (sep < 0) return problem;
    const offset = offsetOf(doc, pathSegments(problem.slice(0, sep)));
    return offset === undefined ? problem : `${at(positionOf(text, offset))}: ${problem}`;
  };
}

/**
 * Parse config text. Throws GUARDIAN_E_CONFIG_PARSE for a syntax error, a
 * repeated key, more than one YAML document, an alias to nothing or an alias
 * bomb, nesting too deep, or a file with nothing in it.
 */
export function readConfigText(raw: string, source: string, format: ConfigFormat = formatOf(source)): ConfigSource {
  const text = withoutBom(raw);
  if (format === 'json') {
    if (text.trim() === '') throw new ConfigError('GUARDIAN_E_CONFIG_PARSE', source, [EMPTY_FILE]);
    const parsed = parseJsonText(text);
    if (!parsed.ok) throw new ConfigError('GUARDIAN_E_CONFIG_PARSE', source, [parsed.problem]);
    // JSON.parse keeps the last of a repeated key without a word: the YAML reading of the same text refuses it
    const doc = parseDocument(text, { uniqueKeys: false });
    const duplicates = duplicateKeyProblems(doc, text);
    if (duplicates.length > 0) throw new ConfigError('GUARDIAN_E_CONFIG_PARSE', source, duplicates);
    return { data: parsed.value, locate: doc.errors.length === 0 ? locator(text, doc) : (p) => p };
  }
  const read = readYaml(text);
  if (!read.ok) throw new ConfigError('GUARDIAN_E_CONFIG_PARSE', source, read.empty ? [EMPTY_FILE] : read.problems);
  return { data: read.data, locate: locator(text, read.doc) };
}
