/**
 * YAML text → data, with every way the yaml library can refuse a file turned
 * into `line L, column C: …` problems in our words: a repeated key named with
 * both its lines, one document per file, a key that is a list or map, an alias
 * to no anchor (or one set later), an alias bomb, nesting too deep. Nothing of
 * the library's own wording (`please use YAML.parseAllDocuments()`, `Set
 * mapAsMap: true`, `Maximum call stack size exceeded`) reaches a person.
 */
import { isAlias, isMap, isScalar, isSeq, parseAllDocuments, visit, type Document, type Node } from 'yaml';
import { at, MAX_DEPTH, positionOf } from './json-text.js';
import { shownText } from './shown.js';

/** Aliases may expand to at most this many nodes in all (an alias bomb expands to millions). */
export const MAX_ALIAS_COUNT = 1000;

export const EMPTY_FILE = 'the file is empty (no settings, only white space or comments)';

export type YamlRead = { readonly ok: true; readonly doc: Document; readonly data: unknown } | { readonly ok: false; readonly empty: boolean; readonly problems: readonly string[] };

const where = (text: string, offset: number | undefined): string => (offset === undefined ? '(root)' : at(positionOf(text, offset)));

const keyText = (node: unknown): string | undefined => (isScalar(node) ? String(node.value) : undefined);

/** A key written twice in one map: `key 'x' appears twice (lines 3 and 7)`. */
export function duplicateKeyProblems(doc: Document, text: string): string[] {
  const out: string[] = [];
  visit(doc, {
    Map(_, map) {
      const first = new Map<string, number>();
      for (const pair of map.items) {
        const key = keyText(pair.key);
        const offset = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
        if (key === undefined || offset === undefined) continue;
        const seen = first.get(key);
        if (seen === undefined) first.set(key, offset);
        else out.push(`${where(text, offset)}: key ${shownText(key)} appears twice (lines ${positionOf(text, seen).line} and ${positionOf(text, offset).line}): keep one`);
      }
    },
  });
  return out;
}

/** Keys that are lists or maps, aliases to no earlier anchor, and nesting deeper than MAX_DEPTH. */
function structureProblems(doc: Document, text: string): string[] {
  const out: string[] = [];
  const tooDeep = (node: Node, path: readonly unknown[]): symbol | undefined => {
    if (path.filter((n) => isMap(n) || isSeq(n)).length < MAX_DEPTH) return undefined;
    out.push(`${where(text, node.range?.[0])}: nested more than ${MAX_DEPTH} levels deep: no setting is that deep`);
    return visit.BREAK;
  };
  visit(doc, {
    Pair(_, pair) {
      if (pair.key !== null && !isScalar(pair.key) && !isAlias(pair.key)) {
        out.push(`${where(text, (pair.key as Node).range?.[0])}: a key must be plain text or a number, not a list or map ('? […]' keys are not supported)`);
      }
    },
    Map: (_, map, path) => tooDeep(map, path),
    Seq: (_, seq, path) => tooDeep(seq, path),
    Alias(_, alias) {
      if (alias.resolve(doc) === undefined) {
        out.push(`${where(text, alias.range?.[0])}: alias '*${shownText(alias.source, 40, false)}' names no anchor before it (write '&${shownText(alias.source, 40, false)}' on an earlier value, or the value itself)`);
      }
    },
  });
  return out;
}

/** The parser's own errors, in our words where its words are the library's. */
function parserProblems(doc: Document, text: string): string[] {
  return doc.errors.filter((e) => e.code !== 'DUPLICATE_KEY' && e.code !== 'MULTIPLE_DOCS').map((e) => {
    const pos = e.pos[0];
    if (e.code === 'RESOURCE_EXHAUSTION') return `${where(text, pos)}: nested too deeply to read (more than ${MAX_DEPTH} levels is never a config)`;
    const what = (e.message.split('\n')[0] ?? e.code).replace(/ at line \d+, column \d+:?$/, '');
    return `${where(text, pos)}: ${what}`;
  });
}

const isEmpty = (doc: Document): boolean => doc.contents === null || (isScalar(doc.contents) && doc.contents.source === '');

/** Parse YAML text (a byte order mark already removed): the one document's data, or every problem. */
export function readYaml(text: string): YamlRead {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: false });
  const all: Document[] = Array.isArray(docs) ? docs : [];
  const filled = all.filter((d) => !isEmpty(d));
  const doc = filled[0] ?? all[0];
  if (doc === undefined || filled.length === 0) {
    const problems = all.flatMap((d) => parserProblems(d, text));
    return { ok: false, empty: problems.length === 0, problems: problems.length === 0 ? [EMPTY_FILE] : problems };
  }
  if (all.length > 1) {
    const second = all[1]?.range?.[0];
    return { ok: false, empty: false, problems: [`${where(text, second)}: one YAML document per file (found ${all.length}; the second starts here)`] };
  }
  const parsed = parserProblems(doc, text);
  if (parsed.length > 0) return { ok: false, empty: false, problems: parsed };
  const problems = [...duplicateKeyProblems(doc, text), ...structureProblems(doc, text)];
  if (problems.length > 0) return { ok: false, empty: false, problems };
  try {
    return { ok: true, doc, data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown };
  } catch {
    // the checks above leave one cause: aliases that expand past MAX_ALIAS_COUNT nodes
    let first: number | undefined;
    visit(doc, { Alias(_, alias) { first = alias.range?.[0]; return visit.BREAK; } });
    return { ok: false, empty: false, problems: [`${where(text, first)}: the aliases expand to too many values (more than ${MAX_ALIAS_COUNT}; an alias bomb?): write the values out`] };
  }
}
