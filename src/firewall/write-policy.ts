import type { WriteDecision, WriteDenyReason, WriteGate, WriteRequest } from '../core/types.js';
import type { DeviceWritePolicy, Manifest } from './manifest.js';

export type { WriteDecision, WriteDenyReason, WriteRequest } from '../core/types.js';

const WINDOW_MS = 60_000;

/**
 * The device write policy of the manifest: a write is denied unless one rule
 * of its device covers the table, every address it touches, and (for
 * registers) every value; and the device's writes in the last minute are
 * under `MaxWritesPerMinute`. Denied writes do not count against the rate.
 * A rule with `Min`/`Max` takes only writes by point name: limits are on
 * engineering values, and raw registers could assemble any 32-bit value from
 * two 16-bit halves that each pass the limits.
 * Pure decision logic: the caller logs the decision and answers the command.
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
    if (!Number.isInteger(req.address) || !Number.isInteger(req.count) || req.count < 1 || req.address < 0 || req.address + req.count - 1 > 65535) {
      return deny('malformed', `address ${req.address} x ${req.count} is not a valid Modbus range`);
    }
    const policy = this.policies.get(req.device);
    if (policy === undefined || policy.allow.length === 0) {
      return deny('no-policy', `device '${req.device}' may not be written: the manifest has no write policy for it`);
    }
    const last = req.address + req.count - 1;
    const forTable = policy.allow.filter((r) => r.table === req.table);
    if (forTable.length === 0) return deny('table', `device '${req.device}': no ${req.table} writes are allowed`);
    const rule = forTable.find((r) => r.from <= req.address && last <= r.to);
    if (rule === undefined) {
      const ranges = forTable.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(', ');
      return deny('range', `device '${req.device}': ${req.table} ${req.address}${last === req.address ? '' : `-${last}`} is outside the allowed ${ranges}`);
    }
    if (req.table === 'holding') {
      if (req.kind === 'raw' && (rule.min !== undefined || rule.max !== undefined)) {
        return deny('value', `device '${req.device}': ${req.table} ${req.address} has value limits; write it by point name, not as raw registers`);
      }
      for (const v of req.values) {
        if (!Number.isFinite(v)) return deny('value', `device '${req.device}': value ${v} is not a finite number`);
        if (rule.min !== undefined && v < rule.min) return deny('value', `device '${req.device}': value ${v} is below the minimum ${rule.min}`);
        if (rule.max !== undefined && v > rule.max) return deny('value', `device '${req.device}': value ${v} is above the maximum ${rule.max}`);
      }
    }
    if (policy.maxWritesPerMinute !== undefined) {
      const now = this.now();
      const times = (this.recent.get(req.device) ?? []).filter((t) => now - t < WINDOW_MS);
      this.recent.set(req.device, times);
      if (times.length >= policy.maxWritesPerMinute) {
        return deny('rate', `device '${req.device}': more than ${policy.maxWritesPerMinute} writes a minute`);
      }
      times.push(now);
    }
    return { allowed: true, verify: rule.verify };
  }
}

function deny(reason: WriteDenyReason, message: string): WriteDecision {
  return { allowed: false, reason, message };
}
