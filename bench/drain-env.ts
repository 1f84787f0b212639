// bench/drain.ts's knobs (environment variables, documented at the top of drain.ts), its log and units.
import { configPatch, envNum, fmt, makeLog, ROOT } from './lib.js';

export const log = makeLog('drain');
export const BACKLOG = envNum('DRAIN_BACKLOG', 100_000);
export const POINTS = envNum('DRAIN_POINTS', 20);
export const LIVE_DEVICES = envNum('DRAIN_LIVE_DEVICES', 10);
export const LIVE_INTERVAL_MS = envNum('DRAIN_LIVE_INTERVAL_MS', 10);
export const BURST_DEVICES = envNum('DRAIN_BURST_DEVICES', 10);
export const BURST_INTERVAL_MS = envNum('DRAIN_BURST_INTERVAL_MS', 1);
export const ACCUMULATE_TIMEOUT_S = envNum('DRAIN_ACCUMULATE_TIMEOUT_S', 300);
export const DRAIN_TIMEOUT_S = envNum('DRAIN_TIMEOUT_S', 120);
export const SDWEAR_DEVICES = envNum('SDWEAR_DEVICES', 10);
export const SDWEAR_INTERVAL_MS = envNum('SDWEAR_INTERVAL_MS', 1000);
export const SDWEAR_WARMUP_S = envNum('SDWEAR_WARMUP_S', 5);
export const SDWEAR_S = envNum('SDWEAR_S', 30);
export const TARGET_RATE = envNum('DRAIN_TARGET', 5000);
export const PHASES = (process.env['BENCH_PHASES'] ?? 'drain,sdwear').split(',');
export const CONFIG_PATCH = configPatch();
export const CPU_PROFILE_DIR = process.env['BENCH_CPU_PROFILE'];
export const GUARDIAN_ROOT = process.env['BENCH_GUARDIAN_ROOT'] ?? ROOT;
export const KEEP = process.env['BENCH_KEEP'] === '1';
export const MOSQUITTO_EXTRA = (process.env['BENCH_MOSQUITTO_CONF'] ?? '').split(';').map((s) => s.trim()).filter((s) => s !== '');

export const KB = (b: number): string => `${fmt(b / 1024)} KB`;
export const MB = (b: number, digits = 1): string => `${fmt(b / 1e6, digits)} MB`;
