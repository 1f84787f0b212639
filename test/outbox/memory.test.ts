import t from 'tap';
import type { UpstreamMessage } from '../../src/core/types.js';
import { MemoryOutbox } from '../../src/outbox/memory.js';
import { captureLogger } from '../fixtures/logs.js';

const msg = (n: number): UpstreamMessage => ({ kind: 'telemetry', device: 'd', payload: String(n) });
const payloads = (entries: { message: UpstreamMessage }[]): string[] => entries.map((e) => e.message.payload);

t.test('entries come out in order, stay in flight until acked, and released ones come back first in order', async (t) => {
  const box = new MemoryOutbox(100, captureLogger().log);
  for (let i = 1; i <= 6; i++) box.append(msg(i));
  const first = box.take(4);
  t.same(payloads(first), ['1', '2', '3', '4']);
  t.match(box.stats(), { pending: 2, inFlight: 4 });
  box.ack(first[1]!.id);
  // Released one at a time, in reverse: they must still come out in id order.
  box.release([first[3]!.id]);
  box.release([first[0]!.id]);
  box.release([first[2]!.id]);
  t.same(payloads(box.take(10)), ['1', '3', '4', '5', '6']);
});

t.test('when full, the oldest pending entries are dropped, counted and logged with their code', async (t) => {
  const logs = captureLogger();
  let now = 0;
  const box = new MemoryOutbox(3, logs.log, () => now, () => now);
  const inFlight = (box.append(msg(1)), box.take(1));
  for (let i = 2; i <= 6; i++) box.append(msg(i));
  t.match(box.stats(), { pending: 2, inFlight: 1, dropped: 3 });
  t.same(payloads(box.take(10)), ['5', '6'], 'the newest survive; the in-flight entry is never dropped');
  box.ack(inFlight[0]!.id);
  const drops = logs.withCode('GUARDIAN_E_OUTBOX_DROPPED');
  t.equal(drops.length, 1, 'logged once per interval, not once per drop');
  t.match(drops[0], { err: { context: { dropped: 1, droppedTotal: 1 } } });
  now += 10_000;
  box.append(msg(7));
  box.append(msg(8));
  box.append(msg(9));
  box.append(msg(10));
  t.equal(logs.withCode('GUARDIAN_E_OUTBOX_DROPPED').length, 2);
  await box.close();
  t.match(logs.withCode('GUARDIAN_E_OUTBOX_DROPPED').at(-1), { err: { context: { droppedTotal: 6 } } }, 'close reports drops not yet logged');
  t.match(logs.withCode('GUARDIAN_E_SHUTDOWN_TIMEOUT').at(-1), { unsent: 3 });
});
