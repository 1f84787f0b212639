// Shared helpers for the ModbusBusAdapter integration tests: real configs built
// through the gateway's config loader, an adapter whose sink collects every
// PollResult, and waits on those results (with a deadline, never a bare sleep).
import type { WriteGate } from '../../../src/core/types.js';
import { WritePolicy } from '../../../src/firewall/write-policy.js';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import type { BusConfig, PointConfig } from '../../../src/config/types.js';
import type { PollResult, RawReading } from '../../../src/core/types.js';
import { ModbusBusAdapter } from '../../../src/downstream/modbus/adapter.js';
import { parseConfig } from '../../../src/config/load.js';
import { captureLogger, type LogCapture } from '../../fixtures/logs.js';

/**
 * A bus as a user would write it in guardian.yaml, run through parseConfig
 * (schema, semantic checks, defaults): the config the daemon would hand the adapter.
 */
export function busConfig(bus: Record<string, unknown>): BusConfig {
  const text = stringify({
    version: 1,
    gateway: { id: 'test-gw' },
    upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } },
    buses: [bus],
  });
  const [parsed] = parseConfig(text, 'adapter-test').buses;
  if (parsed === undefined) throw new Error('parseConfig returned no bus');
  return parsed;
}

/** The named device's points as the loader filled them in. */
export function pointsOf(bus: BusConfig, device: string): ReadonlyMap<string, PointConfig> {
  const d = bus.devices.find((x) => x.name === device);
  if (d === undefined) throw new Error(`no device ${device}`);
  return new Map(d.points.map((p) => [p.name, p]));
}

export interface RunningAdapter {
  readonly adapter: ModbusBusAdapter;
  readonly logs: LogCapture;
  readonly results: PollResult[];
  /** Results of one device, in arrival order. */
  of(device: string): PollResult[];
  /** The first result (already received or future) at index >= `from` that matches. */
  waitFor(predicate: (r: PollResult) => boolean, opts?: { from?: number; timeoutMs?: number; what?: string }): Promise<PollResult>;
  /** The n-th result of `device` received after this call (n = 1: the next one). */
  nextOf(device: string, n?: number, timeoutMs?: number): Promise<PollResult>;
  /** Stop the adapter (also done in teardown; a second call is a no-op). */
  stop(): Promise<void>;
}

export function reading(r: PollResult, point: string): RawReading {
  const found = r.readings.find((x) => x.point === point);
  if (found === undefined) throw new Error(`poll of ${r.device} has no reading for ${point}: ${JSON.stringify(r)}`);
  return found;
}

/** { point: value } of the good readings and { point: quality } of the bad ones. */
export function summarize(r: PollResult): { values: Record<string, unknown>; qualities: Record<string, string> } {
  const values: Record<string, unknown> = {};
  const qualities: Record<string, string> = {};
  for (const x of r.readings) {
    values[x.point] = x.value;
    qualities[x.point] = x.quality;
  }
  return { values, qualities };
}

export const allGood = (r: PollResult): boolean => r.readings.length > 0 && r.readings.every((x) => x.quality === 'good');
export const allBad = (r: PollResult): boolean => r.readings.length > 0 && r.readings.every((x) => x.quality !== 'good');

/** Start a ModbusBusAdapter for `bus`; it is stopped in teardown. */
/** `gate` is the write policy the adapter asks (default: the empty policy, which denies every write). */
export async function runAdapter(t: Test, bus: BusConfig, logs: LogCapture = captureLogger(), gate: WriteGate = new WritePolicy(new Map())): Promise<RunningAdapter> {
  const results: PollResult[] = [];
  const waiters: { from: number; predicate: (r: PollResult) => boolean; resolve: (r: PollResult) => void }[] = [];
  const adapter = new ModbusBusAdapter({
    bus,
    gate,
    log: logs.log,
    sink: (r) => {
      results.push(r);
      const index = results.length - 1;
      for (const w of [...waiters]) {
        if (index >= w.from && w.predicate(r)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(r);
        }
      }
    },
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= adapter.stop());
  t.teardown(stop);
  await adapter.start();

  const waitFor: RunningAdapter['waitFor'] = (predicate, opts = {}) => {
    const from = opts.from ?? 0;
    const timeoutMs = opts.timeoutMs ?? 10000;
    const seen = results.slice(from).find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        from,
        predicate,
        resolve: (r: PollResult) => { clearTimeout(timer); resolve(r); },
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no poll result ${opts.what ?? 'matching'} within ${timeoutMs} ms; last: ${JSON.stringify(results.slice(-3))}`));
      }, timeoutMs);
      waiters.push(waiter);
    });
  };

  return {
    adapter,
    logs,
    results,
    of: (device) => results.filter((r) => r.device === device),
    waitFor,
    nextOf: (device, n = 1, timeoutMs = 10000) => {
      let count = 0;
      return waitFor((r) => r.device === device && ++count === n, { from: results.length, timeoutMs, what: `#${n} of ${device}` });
    },
    stop,
  };
}
