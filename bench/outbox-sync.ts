// The cost of durability modes of the SQLite outbox, in process, on the state directory's disk
// (BENCH_DIR, default the OS temp dir: point it at the SD card to measure one). For each mode it
// appends 10 devices' messages in commits of BENCH_BATCH (default 1: one poll per event-loop turn,
// the worst case), acknowledging as it goes, and times every commit (flush), reading
// /proc/self/io for bytes written. Modes:
//   normal      synchronous NORMAL with the sequence reservation (the default: one fsynced
//               commit per 1,000 messages of a device)
//   normal-r10  the same with a reservation of 10 (an fsync every 10 messages of a device)
//   normal-unreserved  a reservation too large to renew (one fsync at the start): what NORMAL
//               cost before sequence numbers were made safe against a power loss
//   full        synchronous FULL (an fsync every commit)
// Run: node --import tsx bench/outbox-sync.ts   (BENCH_MESSAGES, default 20000)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { SqliteOutbox } from '../src/outbox/sqlite/store.js';
import { envNum, fmt, percentile } from './lib.js';

const MESSAGES = envNum('BENCH_MESSAGES', 20_000);
const BATCH = envNum('BENCH_BATCH', 1);
const DEVICES = 10;
const PAYLOAD = JSON.stringify({ seq: 0, ts: Date.now(), points: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`p${i}`, 123.45])) });

const writeBytes = (): number => Number(/write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? 0);

type Mode = 'normal' | 'normal-r10' | 'normal-unreserved' | 'full';
const RESERVE: Partial<Record<Mode, number>> = { 'normal-r10': 10, 'normal-unreserved': 2 ** 40 };

async function run(mode: Mode): Promise<string> {
  const dir = mkdtempSync(join(process.env['BENCH_DIR'] ?? tmpdir(), 'guardian-bench-sync-'));
  try {
    const box = new SqliteOutbox({
      path: join(dir, 'outbox.db'), maxBytes: 1 << 30, maxAgeMs: 0, commitIntervalMs: 0,
      synchronous: mode === 'full' ? 'full' : 'normal', ...(RESERVE[mode] === undefined ? {} : { seqReserve: RESERVE[mode] }), log: pino({ level: 'warn' }),
    });
    box.open();
    const times: number[] = [];
    const seqs = new Array<number>(DEVICES).fill(0);
    const io0 = writeBytes();
    const t0 = performance.now();
    for (let n = 0; n < MESSAGES;) {
      for (let b = 0; b < BATCH && n < MESSAGES; b++, n++) {
        const d = n % DEVICES;
        seqs[d] = (seqs[d] ?? 0) + 1;
        box.append({ kind: 'telemetry', device: `dev-${d}`, seq: seqs[d], payload: PAYLOAD });
      }
      const s = performance.now();
      box.flush(false);
      times.push(performance.now() - s);
      for (const e of box.take(BATCH)) box.ack(e.id);
    }
    const wall = performance.now() - t0;
    await box.close();
    const written = writeBytes() - io0;
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    return `outbox-sync ${mode}: ${fmt(times.length)} commits of ${BATCH} | commit mean ${fmt(mean, 3)} p50 ${fmt(percentile(times, 0.5), 3)} p99 ${fmt(percentile(times, 0.99), 3)} max ${fmt(times[times.length - 1] ?? 0, 2)} ms | ${fmt(MESSAGES / (wall / 1000))} msg/s | ${fmt(written / MESSAGES / 1024, 2)} KB written per message`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const mode of ['normal-unreserved', 'normal', 'normal-r10', 'full'] as const) console.log(await run(mode));
