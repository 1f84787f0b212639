// Power loss with the outbox in WAL mode (synchronous NORMAL): the writes a gateway's outbox
// really made are recorded with strace, and the files are rebuilt as a disk holds them after a
// power cut (only what was written before each file's last fsync, or a little more). The outbox
// reopened on that disk after a "reboot" (another boot id) must continue every device's seq above
// every number it had committed (and so may have published) before the cut: a consumer that drops
// duplicates by (device, seq) never sees a reused number. The simulated cut must really roll the
// stored counter back (else the test proves nothing), and the skip is logged.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { SqliteOutbox } from '../../src/outbox/sqlite/store.js';
import { captureLogger, codeOf } from '../fixtures/logs.js';
import type { WriterStep } from '../fixtures/outbox-writer.js';
import { tmpDir } from '../fixtures/ports.js';
import { lastSyncs, parseTrace, replay, runTraced, type DiskEvent } from '../fixtures/strace-disk.js';

const WRITER = join(import.meta.dirname, '..', 'fixtures', 'outbox-writer.ts');
const FILES = new Set(['outbox.db', 'outbox.db-wal']);

interface Run { readonly events: DiskEvent[]; readonly published: Record<string, number> }

async function traceWriter(t: Test, steps: readonly WriterStep[], env: Record<string, string>): Promise<Run> {
  const dir = await tmpDir(t);
  const publishedFile = join(dir, 'published.jsonl');
  const exit = await runTraced([process.execPath, '--import', 'tsx', WRITER], join(dir, 'trace'), {
    ...process.env, WRITER_DB: join(dir, 'outbox.db'), WRITER_BOOT: 'boot-1', WRITER_STEPS: JSON.stringify(steps), WRITER_PUBLISHED: publishedFile, ...env,
  });
  if (exit !== 'SIGKILL' && exit !== 137) throw new Error(`the writer ended with ${String(exit)}, not its own SIGKILL`);
  const lines = readFileSync(publishedFile, 'utf8').trim().split('\n');
  return { events: parseTrace(join(dir, 'trace'), (f) => FILES.has(f)), published: JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, number> };
}

/** The highest seq per device the rebuilt files hold, read directly (before the outbox recovers anything). */
function rawCommitted(dir: string): Map<string, number> {
  const db = new Database(join(dir, 'outbox.db'));
  try {
    const rows = db.prepare('SELECT device, max(seq) AS seq FROM (SELECT device, seq FROM sequences UNION ALL SELECT device, seq FROM outbox WHERE seq IS NOT NULL) GROUP BY device').all() as { device: string; seq: number }[];
    return new Map(rows.map((r) => [r.device, r.seq]));
  } finally {
    db.close();
  }
}

async function disk(t: Test, run: Run, cut: (file: string) => number): Promise<string> {
  const dir = await tmpDir(t);
  mkdirSync(dir, { recursive: true });
  replay(run.events, cut, dir);
  return dir;
}

/** Reopen after the reboot; returns the numbering it continues from and the log. */
async function reopen(dir: string, synchronous: 'normal' | 'full' = 'normal'): Promise<{ seqs: Map<string, number>; logs: ReturnType<typeof captureLogger> }> {
  const logs = captureLogger();
  const box = new SqliteOutbox({ path: join(dir, 'outbox.db'), maxBytes: 1 << 30, maxAgeMs: 0, commitIntervalMs: 0, synchronous, bootId: 'boot-2', log: logs.log });
  box.open();
  const seqs = box.sequences();
  await box.close();
  return { seqs, logs };
}

const below = (seqs: Map<string, number>, published: Record<string, number>): string[] =>
  Object.entries(published).filter(([device, seq]) => (seqs.get(device) ?? 0) < seq).map(([device, seq]) => `${device}: ${seqs.get(device) ?? 0} < ${seq}`);

/** Cuts to check: each file at its last sync (the worst case), then later points of the WAL. */
function cuts(run: Run): ((file: string) => number)[] {
  const last = lastSyncs(run.events);
  const worst = (file: string): number => last.get(file) ?? 0;
  const laterWal = run.events.map((e, i) => (e.file === 'outbox.db-wal' && e.kind === 'write' && i >= worst('outbox.db-wal') ? i + 1 : -1)).filter((i) => i > 0);
  const picks = [...new Set([0.25, 0.5, 0.75, 1].map((f) => laterWal[Math.ceil(f * laterWal.length) - 1]).filter((i): i is number => i !== undefined))];
  return [worst, ...picks.map((i) => (file: string) => (file === 'outbox.db-wal' ? i : worst(file)))];
}

const steps = (n: number, appends: Record<string, number>, acks: number): WriterStep[] => Array.from({ length: n }, () => ({ appends, acks }));

t.test('a power cut after many commits: numbering continues above everything published, the skip is logged', async (t) => {
  const run = await traceWriter(t, steps(40, { a: 3, b: 1 }, 2), {});
  t.ok(run.events.some((e) => e.kind === 'sync' && e.file === 'outbox.db-wal'), 'the WAL was fsynced (the reservation)');
  const worst = cuts(run)[0];
  if (worst === undefined) throw new Error('no cut');
  const dir = await disk(t, run, worst);
  const raw = rawCommitted(await disk(t, run, worst));
  t.ok(below(raw, run.published).length > 0, `the cut rolled the stored counters back (stored ${JSON.stringify(Object.fromEntries(raw))}, published ${JSON.stringify(run.published)})`);
  const { seqs, logs } = await reopen(dir);
  t.same(below(seqs, run.published), [], 'every device continues above its highest published seq');
  t.ok(logs.lines.some((l) => codeOf(l) === 'GUARDIAN_E_OUTBOX_SEQ_SKIPPED' && l.level === 40), 'the skip is logged as a warning with its code');
});

t.test('property: any workload, any cut at or after the last fsync: no seq is reused after the reboot', async (t) => {
  const seed = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);
  const step = fc.record({ appends: fc.record({ a: fc.nat(12), b: fc.nat(3), c: fc.constantFrom(0, 0, 25) }), acks: fc.nat(30) });
  const workloads = fc.sample(fc.record({ steps: fc.array(step, { minLength: 1, maxLength: 25 }), reserve: fc.constantFrom(2, 7, 40, 1000) }), { seed, numRuns: 4 });
  let rolledBack = 0;
  for (const [i, w] of workloads.entries()) {
    const run = await traceWriter(t, w.steps, { WRITER_RESERVE: String(w.reserve) });
    for (const [j, cut] of cuts(run).entries()) {
      const dir = await disk(t, run, cut);
      if (j === 0 && below(rawCommitted(await disk(t, run, cut)), run.published).length > 0) rolledBack += 1;
      const { seqs } = await reopen(dir);
      t.same(below(seqs, run.published), [], `seed ${seed} (FC_SEED=${seed} reproduces), workload ${i} (reserve ${w.reserve}, ${w.steps.length} commits), cut ${j}: no device continues at or below a published seq`);
    }
  }
  t.comment(`seed ${seed}: ${rolledBack} of ${workloads.length} worst-case cuts rolled a counter back`);
});

t.test('synchronous: full: a power cut loses nothing committed and numbering continues without a gap', async (t) => {
  const run = await traceWriter(t, steps(15, { a: 2 }, 1), { WRITER_SYNC: 'full' });
  const worst = cuts(run)[0];
  if (worst === undefined) throw new Error('no cut');
  t.same(Object.fromEntries(rawCommitted(await disk(t, run, worst))), run.published, 'every committed number is on the disk');
  const { seqs } = await reopen(await disk(t, run, worst), 'full');
  t.same(Object.fromEntries(seqs), run.published, 'numbering continues from the last one, no skip');
});
