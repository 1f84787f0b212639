import type { DeviceWritePolicy, Manifest, WriteRule } from './manifest.js';

/** One write a command asks for, as it would go on the wire. */
export interface WriteRequest {
  readonly device: string;
  readonly table: 'coil' | 'holding';
  /** The first address written. */
  readonly address: number;
  /** How many coils or registers the request writes (a 32-bit value is 2 registers). */
  readonly count: number;
  /**
   * The values the limits apply to: the point's engineering value when the
   * command names a point, else each raw register value. Not used for coils.
   */
  readonly values: readonly number[];
  /** Who asked (the MQTT client / IoT Hub method caller / topic): for the log. */
  readonly requester: string;
}

export type DenyReason = 'no-policy' | 'table' | 'range' | 'value' | 'rate' | 'malformed';

export type Decision =
  | { readonly allowed: true; readonly rule: WriteRule }
  | { readonly allowed: false; readonly reason: DenyReason; readonly message: string };

const WINDOW_MS = 60_000;

/**
 * The device write policy of the manifest: a write is denied unless one rule
 * of its device covers the table, every address it touches, and (for
 * registers) every value; and the device's writes in the last minute are
 * under `MaxWritesPerMinute`. Denied writes do not count against the rate.
 * Pure decision logic: the caller logs the decision and answers the command.
 */
export class WritePolicy {
  /** Per device: when its allowed writes happened (monotonic ms), oldest first. */
  private readonly recent = new Map<string, number[]>();

  constructor(
    private readonly policies: ReadonlyMap<string, DeviceWritePolicy>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  static fromManifest(manifest: Manifest): WritePolicy {
    return new WritePolicy(manifest.writePolicy);
  }

  decide(req: WriteRequest): Decision {
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
    return { allowed: true, rule };
  }
}

function deny(reason: DenyReason, message: string): Decision {
  return { allowed: false, reason, message };
}
