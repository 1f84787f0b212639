// The sequence ledger: when numbering continues exactly, and when it skips ahead (a reboot
// without a clean stop, when the last commits may be lost). The power cut itself is simulated
// in test/faults/power-loss.test.ts.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SqliteOutbox } from '../../src/outbox/sqlite/store.js';
import { captureLogger, codeOf } from '../fixtures/logs.js';
import { tmpDir } from '../fixtures/ports.js';

const open = (path: string, bootId: string | undefined, logs = captureLogger()): SqliteOutbox => {
  const box = new SqliteOutbox({ path, maxBytes: 1 << 20, maxAgeMs: 0, commitIntervalMs: 0, synchronous: 'normal', bootId, seqReserve: 10, log: logs.log });
  box.open();
  return box;
};

async function write(t: Test, stop: 'clean' | 'crash'): Promise<string> {
  const path = join(await tmpDir(t), 'outbox.db');
  const box = open(path, 'boot-1');
  for (let seq = 1; seq <= 4; seq++) box.append({ kind: 'telemetry', device: 'a', seq, payload: '{}' });
  box.flush();
  if (stop === 'clean') await box.close();
  // 'crash': left open, never closed, as after a SIGKILL (the next open is another connection)
  return path;
}

const cases = [
  { stop: 'crash', boot: 'boot-1', why: 'a restart in the same boot (a process crash) continues exactly: nothing committed was lost' },
  { stop: 'clean', boot: 'boot-2', why: 'a reboot after a clean stop continues exactly: the clean stop made everything durable' },
] as const;
for (const { stop, boot, why } of cases) {
  t.test(why, async (t) => {
    const logs = captureLogger();
    const again = open(await write(t, stop), boot, logs);
    t.same(again.sequences(), new Map([['a', 4]]));
    t.notOk(logs.lines.some((l) => codeOf(l) === 'GUARDIAN_E_OUTBOX_SEQ_SKIPPED'), 'no skip logged');
    await again.close();
  });
}

for (const boot of ['boot-2', undefined]) {
  t.test(`a ${boot === undefined ? 'start without a boot id' : 'reboot'} after an unclean stop skips above the reservation, durably, and says so`, async (t) => {
    const path = await write(t, 'crash');
    const logs = captureLogger();
    const again = open(path, boot, logs);
    t.same(again.sequences(), new Map([['a', 11]]), 'the first message reserved 1..11 (seq 1 + 10): numbering continues above it');
    t.match(logs.lines.find((l) => codeOf(l) === 'GUARDIAN_E_OUTBOX_SEQ_SKIPPED'), { level: 40, devices: { a: { from: 4, to: 11 } } });
    // crash again in this boot: the skip itself was committed, so the next start does not go back to 4
    const third = open(path, boot ?? 'boot-3');
    t.same(third.sequences(), new Map([['a', 11]]), 'the skip was committed');
    await third.close();
    await again.close();
  });
}
