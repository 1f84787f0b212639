// t3.5 for every line the schema accepts, against the spec's rule worked out
// independently here; and the gate's bookkeeping on a clock the test controls
// (the wire-level measurement is rtu-silence.test.ts).
import t from 'tap';
import { interFrameSilenceMs, LineSilence, type LineBusy } from '../../../src/downstream/modbus/line-silence.js';

const BAUDS = [300, 600, 1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400] as const;

void t.test('t3.5 for every baud rate and framing the config accepts', async (t) => {
  let checked = 0;
  for (const baudRate of BAUDS) {
    for (const parity of ['none', 'even', 'odd'] as const) {
      for (const dataBits of [7, 8] as const) {
        for (const stopBits of [1, 2] as const) {
          const bits = 1 + dataBits + (parity === 'none' ? 0 : 1) + stopBits;
          // the spec: 3.5 characters up to 19,200 baud, 1.75 ms above; and never below 1.75 ms (19,200 7N1 would be 1.64)
          const expected = baudRate > 19200 ? 1.75 : Math.max(1.75, (3.5 * bits) / baudRate * 1000);
          const got = interFrameSilenceMs({ baudRate, parity, dataBits, stopBits });
          if (Math.abs(got - expected) > 1e-9) t.fail(`${baudRate} ${dataBits}${parity[0]}${stopBits}: ${got} ms, expected ${expected} ms`);
          if (got < 1.75) t.fail(`${baudRate} ${dataBits}${parity[0]}${stopBits}: ${got} ms is below the spec's floor of 1.75 ms`);
          checked += 1;
        }
      }
    }
  }
  t.equal(checked, BAUDS.length * 12, `${checked} framings checked`);
  t.equal(interFrameSilenceMs({ baudRate: 9600, parity: 'even', dataBits: 8, stopBits: 1 }).toFixed(3), '4.010', '9600 8E1: 11 bits');
  t.equal(interFrameSilenceMs({ baudRate: 19200, parity: 'none', dataBits: 8, stopBits: 1 }).toFixed(3), '1.823', '19200 8N1: 10 bits');
  t.equal(interFrameSilenceMs({ baudRate: 19200, parity: 'none', dataBits: 7, stopBits: 1 }), 1.75, '19200 7N1: the 1.75 ms floor, not 1.64');
});

/** A gate on a clock the test sets; the port is open unless told otherwise. */
function gate(silenceMs: number, charMs: number) {
  const clock = { now: 0 };
  const port = { isOpen: true };
  const busy: LineBusy[] = [];
  const errors: unknown[] = [];
  const g = new LineSilence(silenceMs, charMs, port, { busy: (b) => busy.push(b), error: (e) => errors.push(e) }, () => clock.now);
  return { g, clock, port, busy, errors };
}

/** Resolves once the gate ran `write`, with the clock reading at that moment. */
function sent(g: LineSilence, clock: { now: number }, bytes = 8, deadline = Number.POSITIVE_INFINITY): Promise<number> {
  return new Promise((resolve) => g.send(bytes, deadline, () => resolve(clock.now)));
}

void t.test('with nothing on the line a frame goes at once; without an answer our own frame counts until its estimated end', async (t) => {
  const { g, clock } = gate(5, 10);
  t.equal(await sent(g, clock), 0, 'first frame: sent at once');
  t.equal(g.lastFrameEnd, 80, 'the line is busy for 8 characters x 10 ms');
  // no answer: the next frame may not start before 80 + 5; move the clock there in steps
  const second = sent(g, clock);
  clock.now = 84;
  await new Promise((resolve) => setTimeout(resolve, 20));
  clock.now = 85;
  t.equal(await second, 85, 'sent only once 85 was reached (own frame end + t3.5)');
});

void t.test('an answer ends the estimate of our frame; bytes while waiting restart the wait', async (t) => {
  const { g, clock } = gate(5, 10);
  await sent(g, clock);
  clock.now = 2;
  g.received(); // the answer: our frame is off the wire
  t.equal(g.lastFrameEnd, 2, 'line end is the answer, not the 80 ms estimate');
  const next = sent(g, clock);
  clock.now = 6;
  g.received(); // a late byte
  clock.now = 10;
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(g.lastFrameEnd, 6);
  clock.now = 11;
  t.equal(await next, 11, 'sent 5 ms after the late byte, not after the answer');
});

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

void t.test('a line that never falls silent before the deadline: nothing is sent, the gate reports it', async (t) => {
  const { g, clock, busy } = gate(5, 1);
  g.received();
  let wrote = false;
  g.send(8, 3, () => { wrote = true; }); // t3.5 = 5 ms cannot pass within a 3 ms timeout
  await tick();
  t.notOk(wrote, 'the frame whose request timed out waiting was never written');
  t.same(busy, [{ silenceMs: 5, waitedMs: 0 }], 'reported once, with t3.5');
  const after = sent(g, clock);
  clock.now = 5;
  t.equal(await after, 5, 'the next frame goes when the line is quiet');
});

void t.test('a port closed while a frame waited: the frame is dropped; a write that throws is reported; later frames are unaffected', async (t) => {
  const { g, clock, port, errors } = gate(5, 1);
  g.received();
  let wrote = false;
  g.send(8, Number.POSITIVE_INFINITY, () => { wrote = true; });
  port.isOpen = false;
  clock.now = 5;
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.notOk(wrote, 'nothing written to a closed port');
  port.isOpen = true;
  g.send(8, Number.POSITIVE_INFINITY, () => { throw new Error('EIO'); });
  await tick();
  t.match(errors, [{ message: 'EIO' }], 'the error reaches the bus owner');
  clock.now = 100;
  t.equal(await sent(g, clock), 100, 'the queue goes on');
});
