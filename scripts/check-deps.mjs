#!/usr/bin/env node
// The dependency direction of src/ (README, "Layout"), checked over every import
// specifier (static, `import type`, `export … from`, dynamic `import()`), read with
// TypeScript's own parser (comments and strings are not imports):
// - downstream/, upstream/, firewall/, identity/, update/ never import daemon/ or cli/;
// - firewall/, identity/, update/ import no adapter (downstream/, upstream/);
// - core/ (the seams) imports no other folder of src/;
// - the entry module (cli/entry.ts) loads, before the guard is installed, only node:
//   built-ins, core/ and firewall/guard/ (its static imports, followed through);
// - no import cycle between files, nor between the top-level folders;
// - every relative import names a file that exists.
// Usage: node scripts/check-deps.mjs [SRC_DIR]   (default: src/ of this checkout)
// Prints one line per problem (file → import: rule) and exits 1 when there is any.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SERVICE = new Set(['downstream', 'upstream', 'firewall', 'identity', 'update']);
const WIRING = new Set(['daemon', 'cli']);
const TRUSTED = new Set(['firewall', 'identity', 'update']);
const ADAPTERS = new Set(['downstream', 'upstream']);
const ENTRY = 'cli/entry.ts';
const BEFORE_GUARD = ['core/', 'firewall/guard/', 'firewall/ip.ts'];

/** Every .ts file under dir, as posix paths relative to it. */
function sources(dir, sub = '') {
  const out = [];
  for (const e of readdirSync(path.join(dir, sub), { withFileTypes: true })) {
    const rel = sub === '' ? e.name : `${sub}/${e.name}`;
    if (e.isDirectory()) out.push(...sources(dir, rel));
    else if (e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out.sort();
}

/** The file a relative specifier names (a .js specifier names its .ts source), or undefined. */
function resolve(files, from, spec) {
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  const candidates = [joined, joined.replace(/\.js$/, '.ts'), `${joined}.ts`, `${joined}/index.ts`];
  return candidates.find((c) => files.has(c));
}

/** The module specifiers of one file: `{ spec, dynamic, typeOnly }` (type-only imports load nothing at run time). */
export function specifiers(fileName, text) {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out = [];
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      let typeOnly = false;
      if (ts.isExportDeclaration(node)) typeOnly = node.isTypeOnly;
      else if (node.importClause !== undefined) {
        const c = node.importClause;
        const named = c.namedBindings !== undefined && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
        typeOnly = c.isTypeOnly || (c.name === undefined && named !== undefined && named.length > 0 && named.every((e) => e.isTypeOnly));
      }
      out.push({ spec: node.moduleSpecifier.text, dynamic: false, typeOnly });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg !== undefined && ts.isStringLiteralLike(arg)) out.push({ spec: arg.text, dynamic: true, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/**
 * The import graph of a source tree: `{ files, imports }`, each import
 * `{ from, spec, to, dynamic, typeOnly }` where `to` is the imported file relative
 * to SRC_DIR, `null` for a package or built-in, or `undefined` when it names no file.
 */
export function scan(srcDir) {
  const list = sources(srcDir);
  const files = new Set(list);
  const imports = [];
  for (const from of list) {
    for (const s of specifiers(from, readFileSync(path.join(srcDir, from), 'utf8'))) {
      imports.push({ from, ...s, to: s.spec.startsWith('.') ? resolve(files, from, s.spec) : null });
    }
  }
  return { files: list, imports };
}

const folderOf = (file) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '');

/** Strongly connected components with more than one node (Tarjan), each as a sorted list. */
export function cycles(nodes, edges) {
  const index = new Map(); const low = new Map(); const stack = []; const on = new Set(); const out = [];
  let next = 0;
  const visit = (v) => {
    index.set(v, next); low.set(v, next); next += 1; stack.push(v); on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const scc = [];
      let w;
      do { w = stack.pop(); on.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of nodes) if (!index.has(v)) visit(v);
  return out;
}

function addEdge(map, a, b) {
  if (!map.has(a)) map.set(a, new Set());
  map.get(a).add(b);
}

/** The rule a single import breaks, or undefined. */
function ruleFor(imp) {
  const { from, to } = imp;
  if (to === undefined) return `names no file under src/`;
  if (to === null) return undefined;
  const a = folderOf(from); const b = folderOf(to);
  if (a === b) return undefined;
  if (SERVICE.has(a) && WIRING.has(b)) return `${a}/ must not import ${b}/ (daemon/ wires the components, cli/ drives it: nothing below imports them)`;
  if (TRUSTED.has(a) && ADAPTERS.has(b)) return `${a}/ must not import an adapter (${b}/): the trusted parts depend on no adapter`;
  if (a === 'core') return `core/ must not import ${b}/: the seams import nothing above them`;
  return undefined;
}

/** What the entry module loads before the guard is installed: its static imports, followed through. */
function entryProblems(imports) {
  const problems = [];
  const byFile = new Map();
  for (const imp of imports) if (!imp.dynamic && !imp.typeOnly) addEdge(byFile, imp.from, imp);
  const seen = new Set([ENTRY]);
  const queue = [ENTRY];
  while (queue.length > 0) {
    const file = queue.shift();
    for (const imp of byFile.get(file) ?? []) {
      if (imp.to === null) {
        if (!imp.spec.startsWith('node:')) problems.push({ ...imp, rule: `loaded before the guard by ${ENTRY}: only node: built-ins may be, not a package` });
      } else if (imp.to !== undefined && !seen.has(imp.to)) {
        if (!BEFORE_GUARD.some((p) => imp.to.startsWith(p))) problems.push({ ...imp, rule: `loaded before the guard by ${ENTRY}: only ${BEFORE_GUARD.join(', ')} may be` });
        seen.add(imp.to);
        queue.push(imp.to);
      }
    }
  }
  return problems;
}

/** Every problem of an import graph from scan(): `{ from, spec, rule }`. */
export function check({ files, imports }) {
  const problems = [];
  for (const imp of imports) {
    const rule = ruleFor(imp);
    if (rule !== undefined) problems.push({ ...imp, rule });
  }
  if (files.includes(ENTRY)) problems.push(...entryProblems(imports));
  const fileEdges = new Map(); const folderEdges = new Map(); const via = new Map();
  for (const imp of imports) {
    if (typeof imp.to !== 'string') continue;
    addEdge(fileEdges, imp.from, imp.to);
    const a = folderOf(imp.from); const b = folderOf(imp.to);
    if (a !== b) { addEdge(folderEdges, a, b); if (!via.has(`${a}>${b}`)) via.set(`${a}>${b}`, imp); }
  }
  for (const scc of cycles(files, fileEdges)) {
    const inside = new Set(scc);
    const imp = imports.find((i) => i.from === scc[0] && inside.has(i.to));
    problems.push({ from: scc[0], spec: imp.spec, rule: `part of an import cycle between files ${scc.join(', ')}` });
  }
  for (const scc of cycles([...new Set(files.map(folderOf))], folderEdges)) {
    const inside = new Set(scc);
    for (const [key, imp] of via) {
      const [a, b] = key.split('>');
      if (inside.has(a) && inside.has(b)) problems.push({ from: imp.from, spec: imp.spec, rule: `part of an import cycle between folders ${scc.map((f) => `${f}/`).join(', ')}` });
    }
  }
  return problems;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const srcDir = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src'));
  if (!existsSync(srcDir)) {
    process.stderr.write(`check-deps: ${srcDir} does not exist\n`);
    process.exit(2);
  }
  const graph = scan(srcDir);
  const problems = check(graph);
  for (const p of problems) process.stdout.write(`src/${p.from} → ${p.spec}: ${p.rule}\n`);
  process.stdout.write(`check-deps: ${graph.imports.length} imports in ${graph.files.length} files, ${problems.length} problem(s)\n`);
  process.exit(problems.length === 0 ? 0 : 1);
}
