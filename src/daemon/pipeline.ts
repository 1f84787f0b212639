import type { DeviceConfig } from '../config/types.js';
import type { PointValue, PollResult, Quality, UpstreamMessage } from '../core/types.js';

/** How one point decides whether a poll's value is worth reporting. */
export interface ReportPolicy {
  readonly reportOnChange: boolean;
  readonly deadband: number;
  readonly heartbeatMs?: number;
}

interface PointState {
  value: PointValue;
  quality: Quality;
  reportedAt: number;
}

/** The telemetry body (README "Topics"). */
export interface TelemetryBody {
  readonly seq: number;
  readonly ts: number;
  readonly points: Record<string, PointValue>;
  readonly quality: Record<string, Quality>;
}

/** A value as JSON.stringify writes it (non-finite numbers are null). */
function jsonValue(v: PointValue): string {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  return v === null ? 'null' : v ? 'true' : 'false';
}

function changed(policy: ReportPolicy, previous: PointValue, next: PointValue): boolean {
  if (typeof previous === 'number' && typeof next === 'number') {
    return policy.deadband > 0 ? Math.abs(next - previous) > policy.deadband : next !== previous;
  }
  return previous !== next;
}

/**
 * The gateway's side of the data path: report-on-change / deadband / heartbeat
 * per point, then one message per device poll with a per-device sequence number.
 * A point is reported when it is not report-on-change, on its first reading,
 * when its quality changes, when its value moves beyond the deadband (compared
 * with the last *reported* value, so slow drift is still reported), or when its
 * heartbeat interval has passed. A poll in which nothing is reported produces
 * no message and consumes no sequence number.
 */
export class Pipeline {
  private readonly policies = new Map<string, Map<string, ReportPolicy>>();
  private readonly state = new Map<string, Map<string, PointState>>();
  private readonly seqs = new Map<string, number>();
  /** Per device and point: the point's JSON key with its colon, `"name":`. */
  private readonly keys = new Map<string, Map<string, string>>();
  private readonly qualityJson = new Map<Quality, string>();

  constructor(
    devices: readonly DeviceConfig[],
    private readonly emit: (message: UpstreamMessage) => void,
  ) {
    for (const device of devices) {
      this.policies.set(device.name, new Map(device.points.map((p) => [p.name, p])));
      this.state.set(device.name, new Map());
      this.keys.set(device.name, new Map(device.points.map((p) => [p.name, `${JSON.stringify(p.name)}:`])));
    }
  }

  /** Continue numbering from each device's last stored sequence number (after a restart). */
  resume(last: ReadonlyMap<string, number>): void {
    for (const [device, seq] of last) this.seqs.set(device, seq);
  }

  /**
   * One poll in, at most one message out (also returned). The body is written
   * as JSON directly: this is the per-message hot path, and building two
   * objects with a key per point only to stringify them cost about half of it.
   */
  ingest(result: PollResult): UpstreamMessage | undefined {
    const policies = this.policies.get(result.device);
    const states = this.state.get(result.device);
    const keys = this.keys.get(result.device);
    if (policies === undefined || states === undefined || keys === undefined) return undefined;
    let points = '';
    let quality = '';
    for (const reading of result.readings) {
      const policy = policies.get(reading.point);
      const key = keys.get(reading.point);
      if (policy === undefined || key === undefined) continue;
      if (policy.reportOnChange) {
        const prev = states.get(reading.point);
        const report = prev === undefined
          || prev.quality !== reading.quality
          || (reading.quality === 'good' && changed(policy, prev.value, reading.value))
          || (policy.heartbeatMs !== undefined && result.ts - prev.reportedAt >= policy.heartbeatMs);
        if (!report) continue;
        if (prev === undefined) states.set(reading.point, { value: reading.value, quality: reading.quality, reportedAt: result.ts });
        else {
          prev.value = reading.value;
          prev.quality = reading.quality;
          prev.reportedAt = result.ts;
        }
      }
      const sep = points === '' ? '' : ',';
      points += sep + key + (reading.quality === 'good' ? jsonValue(reading.value) : 'null');
      quality += sep + key + this.qualityToJson(reading.quality);
    }
    if (points === '') return undefined;
    const seq = (this.seqs.get(result.device) ?? 0) + 1;
    this.seqs.set(result.device, seq);
    // The key order is part of the format: consumers may read {"seq":N,"ts":N, as a prefix.
    const message: UpstreamMessage = { kind: 'telemetry', device: result.device, seq, payload: `{"seq":${seq},"ts":${result.ts},"points":{${points}},"quality":{${quality}}}` };
    this.emit(message);
    return message;
  }

  private qualityToJson(q: Quality): string {
    let json = this.qualityJson.get(q);
    if (json === undefined) {
      json = JSON.stringify(q);
      if (this.qualityJson.size < 1000) this.qualityJson.set(q, json); // a handful in practice (bad:exception:N ...)
    }
    return json;
  }
}
