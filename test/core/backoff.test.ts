import t from 'tap';
import { Backoff } from '../../src/core/backoff.js';

t.test('delays double up to the ceiling and stay within [d/2, d]', async (t) => {
  const low = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 0);
  const high = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 0.999999);
  const lows = Array.from({ length: 6 }, () => low.next());
  const highs = Array.from({ length: 6 }, () => high.next());
  t.same(lows, [50, 100, 200, 400, 500, 500]);
  t.same(highs, [100, 200, 400, 800, 1000, 1000]);
});

t.test('jitter spreads delays and reset starts over', async (t) => {
  const b = new Backoff({ initialMs: 1000, maxMs: 60000 });
  const seen = new Set(Array.from({ length: 20 }, () => { const d = b.next(); b.reset(); return d; }));
  t.ok(seen.size > 5, `20 first delays gave ${seen.size} distinct values`);
  for (const d of seen) t.ok(d >= 500 && d <= 1000, `first delay ${d} within [500, 1000]`);
  t.equal(b.attempts, 0);
});
