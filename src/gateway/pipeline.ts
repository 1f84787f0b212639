import type { DeviceConfig } from '../core/config.js';
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

  constructor(
    devices: readonly DeviceConfig[],
    private readonly emit: (message: UpstreamMessage) => void,
  ) {
    for (const device of devices) {
      this.policies.set(device.name, new Map(device.points.map((p) => [p.name, p])));
      this.state.set(device.name, new Map());
    }
  }

  /** Continue numbering from each device's last stored sequence number (after a restart). */
  resume(last: ReadonlyMap<string, number>): void {
    for (const [device, seq] of last) this.seqs.set(device, seq);
  }

  ingest(result: PollResult): TelemetryBody | undefined {
    const policies = this.policies.get(result.device);
    const states = this.state.get(result.device);
    if (policies === undefined || states === undefined) return undefined;
    const points: Record<string, PointValue> = {};
    const quality: Record<string, Quality> = {};
    let any = false;
    for (const reading of result.readings) {
      const policy = policies.get(reading.point);
      if (policy === undefined) continue;
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
      points[reading.point] = reading.quality === 'good' ? reading.value : null;
      quality[reading.point] = reading.quality;
      any = true;
    }
    if (!any) return undefined;
    const seq = (this.seqs.get(result.device) ?? 0) + 1;
    this.seqs.set(result.device, seq);
    const body: TelemetryBody = { seq, ts: result.ts, points, quality };
    this.emit({ kind: 'telemetry', device: result.device, seq, payload: JSON.stringify(body) });
    return body;
  }
}
