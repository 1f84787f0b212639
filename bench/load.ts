// What bench/drain.ts and bench/throughput.ts share: the pymodbus devices they poll, the
// Guardian config that polls them, and the subscriber's reading of a telemetry body.
import type { Test } from 'tap';
import { startModbusServer } from '../test/fixtures/pymodbus.js';
import type { ModbusServer, UnitMap } from '../test/fixtures/pymodbus.js';
import { configPatch, deepMerge, onTeardown, trackPid } from './lib.js';

/** What the pymodbus fixture needs from a tap Test: its teardown, run by the bench's cleanup. */
const benchTest = { teardown: (fn: () => unknown) => { onTeardown(fn); } } as unknown as Test;

/** `servers` pymodbus processes, each with units 1..`units` of `registers` holding registers, stopped at cleanup. */
export async function startModbusUnits(units: number, registers: number, servers = 1): Promise<ModbusServer[]> {
  const map: UnitMap = {};
  for (let u = 1; u <= units; u++) map[u] = { holding: { 0: Array.from({ length: registers }, (_, i) => (i * 257 + u) & 0xffff) } };
  const started: ModbusServer[] = [];
  for (let i = 0; i < servers; i++) {
    const server = await startModbusServer(benchTest, { mode: 'tcp', units: map });
    trackPid(server.pid());
    started.push(server);
  }
  return started;
}

/** One polled device on its own tcp bus; `bus` and `device` add settings to its bus and device. */
export interface PolledDevice {
  name: string;
  port: number;
  unit: number;
  intervalMs: number;
  bus?: Record<string, unknown>;
  device?: Record<string, unknown>;
}

/** Guardian's config (JSON, which YAML 1.2 reads) polling `registers` uint16 holding registers per device, BENCH_CONFIG_PATCH merged in. */
export function guardianConfigText(gateway: Record<string, unknown>, upstream: Record<string, unknown>, devices: PolledDevice[], registers: number): string {
  const points = Array.from({ length: registers }, (_, i) => ({ name: `r${i}`, table: 'holding', address: i, type: 'uint16' }));
  const config = {
    version: 1,
    gateway,
    upstream,
    buses: devices.map((d) => ({
      name: `bus-${d.name}`, type: 'tcp', host: '127.0.0.1', port: d.port,
      ...d.bus,
      devices: [{ name: d.name, unitId: d.unit, pollIntervalMs: d.intervalMs, timeoutMs: 1000, points, ...d.device }],
    })),
  };
  return JSON.stringify(deepMerge(config, configPatch()), null, 1);
}

const PREFIX = /^\{"seq":(\d+),"ts":(\d+),/;

/** The seq and ts a telemetry body starts with ({"seq":N,"ts":N,…), read from its first bytes only. */
export function telemetryHead(payload: Buffer): { seq: number; ts: number } | undefined {
  const m = PREFIX.exec(payload.toString('latin1', 0, Math.min(64, payload.length)));
  return m === null ? undefined : { seq: Number(m[1]), ts: Number(m[2]) };
}
