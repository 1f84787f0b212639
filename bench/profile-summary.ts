// Summarise a V8 .cpuprofile (node --cpu-prof; bench/throughput.ts writes them
// with BENCH_CPU_PROFILE=DIR): self time by file / package and by function, and
// inclusive ("total") time by function, as % of the profile's samples.
//   node --import tsx bench/profile-summary.ts FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

const [file, topArg] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: profile-summary.ts FILE.cpuprofile [TOP]');
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function where(url: string): string {
  if (url === '') return '(native/V8)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return `npm:${rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1] ?? ''}` : rest[0] ?? ''}`;
  }
  if (url.startsWith('node:')) return url;
  const dist = url.indexOf('/dist/');
  return dist >= 0 ? `guardian:${url.slice(dist + 6)}` : url.replace(/^file:\/\//, '');
}
const fnKey = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${where(f.url)}:${f.lineNumber + 1}`;

const selfByFn = new Map<string, number>();
const selfByFile = new Map<string, number>();
const totalByFn = new Map<string, number>();
let total = 0;
const add = (m: Map<string, number>, k: string, v: number): void => { m.set(k, (m.get(k) ?? 0) + v); };
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  const node = byId.get(id);
  if (node === undefined) return;
  total += dt;
  add(selfByFn, fnKey(node.callFrame), dt);
  const special = /^\((idle|program|root|garbage collector)\)$/.test(node.callFrame.functionName);
  add(selfByFile, special ? node.callFrame.functionName : where(node.callFrame.url), dt);
  const seen = new Set<string>();
  for (let n: ProfileNode | undefined = node; n !== undefined; n = byId.get(parent.get(n.id) ?? -1)) {
    const k = fnKey(n.callFrame);
    if (!seen.has(k)) { seen.add(k); add(totalByFn, k, dt); }
  }
});

const idle = [...selfByFn].filter(([k]) => k.startsWith('(idle)')).reduce((s, [, v]) => s + v, 0);
const busy = total - idle;
const print = (title: string, m: Map<string, number>, n: number): void => {
  process.stdout.write(`\n${title} (% of busy time ${(busy / 1e6).toFixed(2)} s; idle ${((idle / total) * 100).toFixed(0)}% of ${(total / 1e6).toFixed(2)} s)\n`);
  for (const [k, v] of [...m].filter(([key]) => !key.startsWith('(idle)') && !key.startsWith('(root)') && !key.startsWith('(program)')).sort((a, b) => b[1] - a[1]).slice(0, n)) {
    process.stdout.write(`${((v / busy) * 100).toFixed(1).padStart(6)}%  ${k}\n`);
  }
};
print('self time by file / package', selfByFile, top);
print('self time by function', selfByFn, top);
print('total (inclusive) time by function', totalByFn, top);
