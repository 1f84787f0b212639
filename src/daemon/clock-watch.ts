import type { Logger } from 'pino';
import { GuardianError } from '../core/errors.js';
import type { Component } from '../core/types.js';

/**
 * Watches the wall clock against the monotonic clock. Guardian schedules
 * everything on the monotonic clock, so a jump (NTP correcting a Raspberry Pi
 * that booted without an RTC, an operator setting the date) changes no poll
 * rate or backoff; but timestamps (`ts`) jump with it, so each jump is logged
 * as GUARDIAN_E_CLOCK_JUMP and counted in the health telemetry.
 */
export class ClockWatch implements Component {
  readonly name = 'clock';
  private timer: NodeJS.Timeout | undefined;
  private wall = 0;
  private mono = 0;
  private count = 0;
  private last: { at: number; jumpMs: number } | undefined;

  constructor(
    private readonly log: Logger,
    private readonly everyMs = 2000,
    private readonly toleranceMs = 1000,
  ) {}

  async start(): Promise<void> {
    this.wall = Date.now();
    this.mono = performance.now();
    this.timer = setInterval(() => this.check(), this.everyMs);
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.resolve();
  }

  stats(): { jumps: number; lastJumpMs: number | null; lastJumpAt: number | null } {
    return { jumps: this.count, lastJumpMs: this.last?.jumpMs ?? null, lastJumpAt: this.last?.at ?? null };
  }

  private check(): void {
    const wall = Date.now();
    const mono = performance.now();
    const jumpMs = Math.round((wall - this.wall) - (mono - this.mono));
    this.wall = wall;
    this.mono = mono;
    if (Math.abs(jumpMs) <= this.toleranceMs) return;
    this.count += 1;
    this.last = { at: wall, jumpMs };
    const err = new GuardianError('GUARDIAN_E_CLOCK_JUMP', `the wall clock jumped ${jumpMs > 0 ? 'forward' : 'backwards'} by ${Math.abs(jumpMs)} ms; polling is unaffected, timestamps follow the new time`, { jumpMs });
    this.log.warn({ err }, err.message);
  }
}
