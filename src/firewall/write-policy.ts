import type { WriteDecision, WriteDenyReason, WriteGate, WriteRequest, WrittenValue } from '../core/types.js';
import { compare, ofBigInt, ofDouble, ofWritten, parseDecimal, toText, type Decimal } from '../core/decimal.js';
import type { DeviceWritePolicy, Manifest, WriteRule } from './manifest.js';

export type { WriteDecision, WriteDenyReason, WriteRequest, WrittenValue } from '../core/types.js';

const WINDOW_MS = 60_000;
const DECIMAL = /^-?\d+$/;

/**
 * The device write policy of the manifest: a write is denied unless the rules of
 * its device (which never overlap: the manifest refuses that) cover the table and
 * every address it touches, every rule with `Min`/`Max` that a written value
 * touches allows that value, and the device's writes in the last minute are under
 * `MaxWritesPerMinute`. Denied writes do not count against the rate.
 *
 * Limits are judged on what the write leaves in the device (`request.written`:
 * the registers about to be sent, decoded with the codec of each configured point
 * they touch), never on what the command said, so a raw write and a write by
 * point name are judged alike. A value that cannot be known from the write (a
 * point only partly written, text, a NaN float, an address no point describes,
 * register bits no `bit` point describes, a bool register that is neither of the
 * point's two encodings) is refused wherever a limit applies. Comparisons are
 * exact (`request.written[].exact`: decimal text, no rounding, 64-bit in full). Pure decision logic: the caller logs the
 * decision and answers the command.
 */
export class WritePolicy implements WriteGate {
  /** Per device: when its allowed writes happened (monotonic ms), oldest first. */
  private readonly recent = new Map<string, number[]>();

  constructor(
    private readonly policies: ReadonlyMap<string, DeviceWritePolicy>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  static fromManifest(manifest: Manifest): WritePolicy {
    return new WritePolicy(manifest.writePolicy);
  }

  decide(req: WriteRequest): WriteDecision {
    const last = req.address + req.count - 1;
    if (!Number.isInteger(req.address) || !Number.isInteger(req.count) || req.count < 1 || req.address < 0 || last > 65535 || req.data.length !== req.count) {
      return deny('malformed', `address ${req.address} x ${req.count} (${req.data.length} values) is not a valid Modbus range`);
    }
    const policy = this.policies.get(req.device);
    if (policy === undefined || policy.allow.length === 0) {
      return deny('no-policy', `device '${req.device}' may not be written: the manifest has no write policy for it`);
    }
    const forTable = policy.allow.filter((r) => r.table === req.table);
    if (forTable.length === 0) return deny('table', `device '${req.device}': no ${req.table} writes are allowed`);
    const gap = firstUncovered(forTable, req.address, last);
    if (gap !== undefined) {
      const ranges = forTable.map((r) => span(r.from, r.to)).join(', ');
      return deny('range', `device '${req.device}': ${req.table} ${span(req.address, last)} is outside the allowed ${ranges} (${req.table} ${gap} is in no rule)`);
    }
    const unexplained = uncovered(req.written, req.address, last);
    if (unexplained !== undefined) return deny('malformed', `device '${req.device}': the request does not say what ${req.table} ${unexplained} will hold`);
    const limited = forTable.filter((r) => r.min !== undefined || r.max !== undefined);
    for (const w of req.written) {
      for (const rule of limited) {
        if (rule.from > w.address + w.count - 1 || w.address > rule.to) continue;
        const refusal = judge(req.device, req.table, w, rule);
        if (refusal !== undefined) return deny('value', refusal);
      }
    }
    if (policy.maxWritesPerMinute !== undefined && req.recheck !== true) {
      const now = this.now();
      const times = (this.recent.get(req.device) ?? []).filter((t) => now - t < WINDOW_MS);
      this.recent.set(req.device, times);
      if (times.length >= policy.maxWritesPerMinute) {
        return deny('rate', `device '${req.device}': more than ${policy.maxWritesPerMinute} writes a minute`);
      }
      times.push(now);
    }
    // a range that touches a rule with Verify false is not read back (a self-clearing register would fail the comparison)
    const verify = forTable.every((r) => r.verify || r.from > last || r.to < req.address);
    return { allowed: true, verify };
  }
}

function span(from: number, to: number): string {
  return from === to ? `${from}` : `${from}-${to}`;
}

/** The first address of from..to that no rule covers. */
function firstUncovered(rules: readonly WriteRule[], from: number, to: number): number | undefined {
  let at = from;
  while (at <= to) {
    const rule = rules.find((r) => r.from <= at && at <= r.to);
    if (rule === undefined) return at;
    at = rule.to + 1;
  }
  return undefined;
}

/** The first written address that no entry of `written` describes (a caller that did not say what it writes). */
function uncovered(written: readonly WrittenValue[], from: number, to: number): number | undefined {
  for (let at = from; at <= to; at++) {
    if (!written.some((w) => w.address <= at && at < w.address + w.count)) return at;
  }
  return undefined;
}

/** Why `w` breaks `rule`'s limits, or undefined when it is within them. */
function judge(device: string, table: string, w: WrittenValue, rule: WriteRule): string | undefined {
  const where = `${table} ${span(w.address, w.address + w.count - 1)}`;
  const limits = `value limits (${table} ${span(rule.from, rule.to)})`;
  if (w.point === undefined) {
    const why = w.unknown === undefined ? 'no configured point says how the device reads it' : `${w.unknown}: no configured point says how the device reads them`;
    return `device '${device}': ${where} has ${limits} and ${why}; write a point by name, or configure one`;
  }
  if (w.value === undefined) return `device '${device}': point ${w.point} (${where}) has ${limits} and ${w.unknown ?? 'no known value'}`;
  const value = exactOf(w);
  if (value === undefined) {
    if (typeof w.value === 'number') return `device '${device}': value ${w.value} is not a finite number`;
    return `device '${device}': point ${w.point} (${where}) has ${limits} and holds text`;
  }
  const shown = w.exact ?? String(w.value);
  if (rule.min !== undefined && compare(value, ofWritten(rule.min)) < 0) return `device '${device}': value ${shown} is below the minimum ${toText(ofWritten(rule.min))}`;
  if (rule.max !== undefined && compare(value, ofWritten(rule.max)) > 0) return `device '${device}': value ${shown} is above the maximum ${toText(ofWritten(rule.max))}`;
  return undefined;
}

/**
 * The written value, exactly: `exact` when the planner gave it (raw * scale + offset
 * without rounding), else a boolean as 0/1, an integer, or a decimal integer string.
 * A limit is the decimal the manifest wrote (`ofWritten`): 250.1 is 250.1, so a
 * float32 that holds 250.100006103515625 is above it.
 */
function exactOf(w: WrittenValue): Decimal | undefined {
  if (w.exact !== undefined) return parseDecimal(w.exact);
  const value = w.value;
  if (typeof value === 'boolean') return ofBigInt(value ? 1n : 0n);
  if (typeof value === 'number') return Number.isFinite(value) ? ofDouble(value) : undefined;
  if (typeof value === 'string' && DECIMAL.test(value)) return ofBigInt(BigInt(value));
  return undefined;
}

function deny(reason: WriteDenyReason, message: string): WriteDecision {
  return { allowed: false, reason, message };
}
