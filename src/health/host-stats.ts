import { readdir, readFile } from 'node:fs/promises';

/**
 * CPU load and temperature read straight from /proc and /sys. systeminformation
 * gets both by running shell commands (`cat /proc/stat | grep cpu`, a loop over
 * hwmon), which the manifest firewall refuses: Guardian runs no shell.
 */
export class CpuLoad {
  private last: { busy: number; total: number } | undefined;

  constructor(private readonly statPath = '/proc/stat') {}

  /** Busy share of all CPUs since the previous call (since boot on the first), in percent with one decimal; null if unreadable. */
  async sample(): Promise<number | null> {
    let text: string;
    try {
      text = await readFile(this.statPath, 'utf8');
    } catch {
      return null;
    }
    const fields = /^cpu\s+(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/).map(Number);
    if (fields === undefined || fields.length < 4 || fields.some((n) => !Number.isFinite(n))) return null;
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const counters = fields.slice(0, 8);
    const total = counters.reduce((a, b) => a + b, 0);
    const idle = (counters[3] ?? 0) + (counters[4] ?? 0);
    const now = { busy: total - idle, total };
    const before = this.last ?? { busy: 0, total: 0 };
    this.last = now;
    const dt = now.total - before.total;
    return dt <= 0 ? 0 : Math.round(((now.busy - before.busy) / dt) * 1000) / 10;
  }
}

/**
 * The CPU temperature in °C from the kernel's thermal zones: the zone whose type
 * names the CPU (`cpu-thermal` on a Raspberry Pi, `x86_pkg_temp`), else the
 * first zone; null where there is none (containers, many VMs).
 */
export async function cpuTemperature(root = '/sys/class/thermal'): Promise<number | null> {
  let zones: string[];
  try {
    zones = (await readdir(root)).filter((z) => z.startsWith('thermal_zone')).sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
  } catch {
    return null;
  }
  const readings: { type: string; celsius: number }[] = [];
  for (const zone of zones) {
    try {
      const [type, temp] = await Promise.all([readFile(`${root}/${zone}/type`, 'utf8'), readFile(`${root}/${zone}/temp`, 'utf8')]);
      const milli = Number(temp.trim());
      if (Number.isFinite(milli)) readings.push({ type: type.trim().toLowerCase(), celsius: Math.round(milli / 100) / 10 });
    } catch {
      // a zone that cannot be read (disabled sensor): skip it
    }
  }
  const cpu = readings.find((r) => r.type.includes('cpu') || r.type.includes('x86_pkg') || r.type.includes('soc'));
  return (cpu ?? readings[0])?.celsius ?? null;
}
