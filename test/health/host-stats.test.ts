// CPU load and temperature straight from /proc and /sys (no shell, which the guard refuses).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CpuLoad, cpuTemperature } from '../../src/health/host-stats.js';
import { tmpDir } from '../fixtures/ports.js';

t.test('load: the busy share between two samples of /proc/stat', async (t) => {
  const stat = join(await tmpDir(t), 'stat');
  const write = (user: number, idle: number): void => writeFileSync(stat, `cpu  ${user} 0 0 ${idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\nintr 1\n`);
  const load = new CpuLoad(stat);
  write(100, 300);
  t.equal(await load.sample(), 25, 'since boot on the first sample');
  write(160, 340);
  t.equal(await load.sample(), 60, '60 busy of 100 ticks');
  t.equal(await load.sample(), 0, 'no ticks since: 0');
  t.equal(await new CpuLoad(join(stat, 'missing')).sample(), null, 'unreadable: null');
  t.type(await new CpuLoad().sample(), 'number', 'the real /proc/stat');
});

t.test('temperature: the CPU zone, else the first, else null', async (t) => {
  const root = await tmpDir(t);
  const zone = (n: number, type: string, milli: string): void => {
    mkdirSync(join(root, `thermal_zone${n}`));
    writeFileSync(join(root, `thermal_zone${n}`, 'type'), `${type}\n`);
    writeFileSync(join(root, `thermal_zone${n}`, 'temp'), `${milli}\n`);
  };
  t.equal(await cpuTemperature(root), null, 'no zones');
  zone(0, 'acpitz', '27800');
  t.equal(await cpuTemperature(root), 27.8, 'the only zone');
  zone(1, 'cpu-thermal', '48312');
  t.equal(await cpuTemperature(root), 48.3, 'the CPU zone of a Raspberry Pi wins');
  t.equal(await cpuTemperature(join(root, 'nope')), null);
});
