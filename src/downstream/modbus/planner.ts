/**
 * Register coalescing: read a device's points in as few Modbus requests as possible.
 * Pure functions, no I/O.
 */
import type { DeviceConfig, PointConfig, Table } from '../../config/types.js';
import { GuardianError } from '../../core/errors.js';
import { isBitTable, registerCount } from './codec.js';

/** One Modbus read: `count` registers (or bits) from `address` of `table`, covering `points`. */
export interface ReadRequest {
  readonly table: Table;
  readonly address: number;
  readonly count: number;
  /** In address order (ties: config order). */
  readonly points: readonly PointConfig[];
}

/** Request order in a plan. */
const TABLE_ORDER: readonly Table[] = ['coil', 'discrete', 'input', 'holding'];
const ADDRESS_SPACE = 0x10000;

function decodeError(message: string, point: PointConfig): GuardianError {
  return new GuardianError('GUARDIAN_E_DECODE', message, {
    point: point.name, table: point.table, address: point.address, type: point.type,
  });
}

/** The per-request maximum for a table: maxBitsPerRequest for coil/discrete, else maxRegistersPerRequest. */
export function maxPerRequest(device: DeviceConfig, table: Table): number {
  return isBitTable(table) ? device.maxBitsPerRequest : device.maxRegistersPerRequest;
}

function planTable(device: DeviceConfig, table: Table, points: readonly PointConfig[]): ReadRequest[] {
  const max = maxPerRequest(device, table);
  const spans = points.map((point, index) => ({ point, index, start: point.address, end: point.address + registerCount(point) }));
  for (const s of spans) {
    if (s.end - s.start > max) {
      throw decodeError(`point ${s.point.name} spans ${s.end - s.start} ${isBitTable(table) ? 'bits' : 'registers'}, more than the ${max} one request may read`, s.point);
    }
    if (s.end > ADDRESS_SPACE) {
      throw decodeError(`point ${s.point.name} at ${table} ${s.start} runs past the last address 65535`, s.point);
    }
  }
  spans.sort((a, b) => a.start - b.start || a.index - b.index);

  const requests: ReadRequest[] = [];
  let current: { start: number; end: number; points: PointConfig[] } | undefined;
  for (const s of spans) {
    if (current !== undefined && s.start - current.end <= device.maxGap && Math.max(current.end, s.end) - current.start <= max) {
      current.end = Math.max(current.end, s.end);
      current.points.push(s.point);
      continue;
    }
    if (current !== undefined) requests.push({ table, address: current.start, count: current.end - current.start, points: current.points });
    current = { start: s.start, end: s.end, points: [s.point] };
  }
  if (current !== undefined) requests.push({ table, address: current.start, count: current.end - current.start, points: current.points });
  return requests;
}

/**
 * Plan the reads of one device. Points are grouped by table and sorted by address;
 * a point joins the current request when the unused addresses between the request's
 * end and the point's start are at most `device.maxGap` and the merged span stays
 * within `maxPerRequest` (overlapping points share a request within that limit).
 * Greedy in address order; deterministic. Requests come coil, discrete, input,
 * holding, then by address. Throws GUARDIAN_E_DECODE for a point larger than one
 * request or running past address 65535.
 */
export function planDevice(device: DeviceConfig): ReadRequest[] {
  return TABLE_ORDER.flatMap((table) => {
    const points = device.points.filter((p) => p.table === table);
    return points.length === 0 ? [] : planTable(device, table, points);
  });
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Human-readable plan for `guardian plan`, lines joined with '\n' (no trailing newline):
 *   boiler (unit 1): 3 requests for 12 points
 *     holding 100..131 (32 registers): temp, pressure
 *     coil 0..15 (16 bits): pump
 */
export function formatPlan(deviceName: string, unitId: number, requests: readonly ReadRequest[]): string {
  const pointCount = requests.reduce((n, r) => n + r.points.length, 0);
  const lines = [`${deviceName} (unit ${unitId}): ${plural(requests.length, 'request')} for ${plural(pointCount, 'point')}`];
  for (const r of requests) {
    const unit = isBitTable(r.table) ? 'bit' : 'register';
    lines.push(`  ${r.table} ${r.address}..${r.address + r.count - 1} (${plural(r.count, unit)}): ${r.points.map((p) => p.name).join(', ')}`);
  }
  return lines.join('\n');
}
