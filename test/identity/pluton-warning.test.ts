// The simulated Pluton store says once per store that it is not hardware-backed, although run's
// preflight and the daemon each open one (issue 13, finding 15: it was logged twice per start).
import t from 'tap';
import { rigs } from '../fixtures/keystores.js';

t.test('two opens of one simulated Pluton store: one NOT hardware-backed warning', async (t) => {
  const rig = await rigs['pluton-sim']!(t);
  const first = rig.make();
  await first.open();
  await first.close();
  const second = rig.make();
  await second.open();
  await second.close();
  t.equal(rig.logs.lines.filter((l) => /NOT hardware-backed/.test(String(l.msg))).length, 1, 'one warning for the store');
  const other = await rigs['pluton-sim']!(t);
  const third = other.make();
  await third.open();
  await third.close();
  t.equal(other.logs.lines.filter((l) => /NOT hardware-backed/.test(String(l.msg))).length, 1, 'another store warns for itself');
});
