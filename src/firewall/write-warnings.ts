/**
 * Write rules whose `Min`/`Max` can never let a write through, found against the
 * config's points (warnings: the manifest is valid, and a rule that allows nothing is
 * safe, but it is almost always a mistake): limits on holding addresses no
 * configured point covers (a limited register with no point to judge it is always
 * refused), and limits no value of a point's type can meet (`Min: 0.5, Max: 0.7` on
 * an integer point with scale 1).
 */
import type { DeviceConfig, PointConfig, PointType } from '../config/types.js';
import type { DeviceWritePolicy, WriteRule } from './manifest.js';

/** The raw integer range of each integer type; other types (floats, text, bits) are not judged here. */
const INTEGER_RANGE: Partial<Record<PointType, readonly [number, number]>> = {
  int16: [-(2 ** 15), 2 ** 15 - 1],
  uint16: [0, 2 ** 16 - 1],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [-(2 ** 63), 2 ** 63 - 1],
  uint64: [0, 2 ** 64 - 1],
};

/** Slack for the float arithmetic below: a warning is only given when no value is clearly possible. */
const SLACK = 1e-9;

/** The holding registers a point spans (as src/downstream/modbus/codec.ts registerCount; an adapter the firewall may not import). */
function registers(p: PointConfig): number {
  if (p.type === 'string') return p.length ?? 1;
  if (p.type === 'int32' || p.type === 'uint32' || p.type === 'float32') return 2;
  if (p.type === 'int64' || p.type === 'uint64' || p.type === 'float64') return 4;
  return 1;
}

function span(from: number, to: number): string {
  return from === to ? String(from) : `${from}-${to}`;
}

/** The addresses of [from, to] that no holding point of the device covers, as spans. */
function uncovered(rule: WriteRule, points: readonly PointConfig[]): string[] {
  const holding = points.filter((p) => p.table === 'holding').map((p) => [p.address, p.address + registers(p) - 1] as const).sort((a, b) => a[0] - b[0]);
  const gaps: string[] = [];
  let next = rule.from;
  for (const [first, last] of holding) {
    if (last < next || first > rule.to) continue;
    if (first > next) gaps.push(span(next, first - 1));
    next = Math.max(next, last + 1);
  }
  if (next <= rule.to) gaps.push(span(next, rule.to));
  return gaps;
}

/** Whether some raw integer of the point's type, as `raw * scale + offset`, lies within the rule's limits. */
function satisfiable(point: PointConfig, rule: WriteRule): boolean {
  const range = INTEGER_RANGE[point.type];
  if (range === undefined || point.scale === 0) return true;
  const min = rule.min ?? -Infinity;
  const max = rule.max ?? Infinity;
  const a = (min - point.offset) / point.scale;
  const b = (max - point.offset) / point.scale;
  const lo = Math.max(range[0], Math.ceil(Math.min(a, b) - SLACK));
  const hi = Math.min(range[1], Math.floor(Math.max(a, b) + SLACK));
  return lo <= hi;
}

function limits(rule: WriteRule): string {
  return [rule.min === undefined ? '' : `Min ${rule.min}`, rule.max === undefined ? '' : `Max ${rule.max}`].filter((s) => s !== '').join(', ');
}

/** One line per rule that can never allow a write, `<manifest path>: …`. */
export function writeRuleWarnings(device: DeviceConfig, policy: DeviceWritePolicy): string[] {
  const base = `Guardian.WritePolicy.Devices.${device.name}.Allow`;
  return policy.allow.flatMap((rule, i) => {
    if (rule.table !== 'holding' || (rule.min === undefined && rule.max === undefined)) return [];
    const where = `${base}[${i}] (holding ${span(rule.from, rule.to)}, ${limits(rule)})`;
    const out: string[] = [];
    const gaps = uncovered(rule, device.points);
    if (gaps.length > 0) {
      out.push(`${where}: no configured point of device '${device.name}' covers holding ${gaps.join(', ')}; a limit needs a point to judge the value, so every write there is refused`);
    }
    for (const p of device.points) {
      const first = p.address;
      const last = p.address + registers(p) - 1;
      if (p.table !== 'holding' || last < rule.from || first > rule.to || satisfiable(p, rule)) continue;
      out.push(`${where}: no value of point '${p.name}' (${p.type}, scale ${p.scale}, offset ${p.offset}) lies within the limits, so every write to it is refused`);
    }
    return out;
  });
}
