import { statfs } from 'node:fs/promises';
import { uptime as osUptime } from 'node:os';
import type { Logger } from 'pino';
import si from 'systeminformation';
import type { Component, DeviceStats, UpstreamMessage } from '../core/types.js';
import type { CredentialsStats } from '../identity/upstream-credentials.js';
import { CpuLoad, cpuTemperature } from './host-stats.js';
import type { OutboxStats } from '../outbox/contract.js';

export interface HealthSources {
  readonly stateDir: string;
  readonly version: string;
  readonly outbox: () => OutboxStats;
  readonly devices: () => readonly DeviceStats[];
  /** Successful upstream connections so far. */
  readonly connections: () => number;
  readonly emit: (message: UpstreamMessage) => void;
  /** Wall-clock jumps seen (ClockWatch). */
  readonly clock: () => { jumps: number; lastJumpMs: number | null; lastJumpAt: number | null };
  /** The upstream's key store credentials (null: the upstream uses none). */
  readonly identity: () => CredentialsStats | null;
}

interface DeviceHealth {
  readonly polls: number;
  readonly failures: number;
  /** Share of this interval's polls that the device answered (null: no poll this interval). */
  readonly successRate: number | null;
  readonly backedOff: boolean;
  readonly lastError: string | null;
}

/**
 * Periodic health telemetry on the health topic: CPU load and temperature,
 * memory, free space on the state volume, uptimes, outbox depth and oldest age,
 * per-device poll success rate and last error, upstream reconnects, the key
 * store behind the upstream's credentials and their expiry. It goes
 * through the outbox like everything else.
 */
export class HealthReporter implements Component {
  readonly name = 'health';
  private timer: NodeJS.Timeout | undefined;
  private previous = new Map<string, DeviceStats>();
  private readonly cpu = new CpuLoad();

  constructor(
    private readonly sources: HealthSources,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    if (this.intervalMs <= 0) return;
    const tick = (): void => {
      this.report().catch((err: unknown) => this.log.warn({ err }, 'health report failed'));
    };
    this.timer = setInterval(tick, this.intervalMs);
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.resolve();
  }

  async collect(): Promise<Record<string, unknown>> {
    const [load, temperature, mem, disk] = await Promise.all([
      this.cpu.sample(), cpuTemperature(), si.mem(), statfs(this.sources.stateDir).catch((err: unknown) => { this.log.debug({ err }, 'statfs of the state directory failed'); return undefined; }),
    ]);
    const outbox = this.sources.outbox();
    const now = Date.now();
    const devices: Record<string, DeviceHealth> = {};
    for (const d of this.sources.devices()) {
      const before = this.previous.get(d.device);
      const polls = d.polls - (before?.polls ?? 0);
      const failures = d.failures - (before?.failures ?? 0);
      devices[d.device] = {
        polls, failures, successRate: polls === 0 ? null : Math.round(((polls - failures) / polls) * 1000) / 1000,
        backedOff: d.backedOff, lastError: d.lastError ?? null,
      };
      this.previous.set(d.device, d);
    }
    return {
      ts: now,
      version: this.sources.version,
      uptimeS: Math.round(process.uptime()),
      systemUptimeS: Math.round(osUptime()),
      cpu: { loadPercent: load, temperatureC: temperature },
      memory: { totalBytes: mem.total, availableBytes: mem.available, processRssBytes: process.memoryUsage.rss() },
      stateVolume: disk === undefined ? null : { freeBytes: disk.bavail * disk.bsize, totalBytes: disk.blocks * disk.bsize },
      outbox: { depth: outbox.pending + outbox.inFlight, oldestAgeS: outbox.oldestEnqueuedAt === undefined ? null : Math.round((now - outbox.oldestEnqueuedAt) / 1000), dropped: outbox.dropped },
      upstream: { reconnects: Math.max(0, this.sources.connections() - 1) },
      clock: this.sources.clock(),
      identity: this.sources.identity(),
      devices,
    };
  }

  /** One report now, outside the interval (an alarm: the key store refusing the credentials); works with the interval off too. */
  reportNow(): void {
    this.report().catch((err: unknown) => this.log.warn({ err }, 'health report failed'));
  }

  private async report(): Promise<void> {
    this.sources.emit({ kind: 'health', payload: JSON.stringify(await this.collect()) });
  }
}
