import type { Logger } from 'pino';
import { Backoff } from '../core/backoff.js';
import type { BackoffConfig } from '../config/types.js';
import { GuardianError } from '../core/errors.js';
import type { Component } from '../core/types.js';
import { joinOnce } from './log-error.js';

type Status = 'stopped' | 'starting' | 'running' | 'retrying' | 'stopping';

interface Slot {
  readonly component: Component;
  readonly backoff: Backoff;
  status: Status;
  timer?: NodeJS.Timeout;
  lastError?: string;
}

/**
 * Starts components in order and stops them in reverse. A component that fails
 * to start is isolated: logged with its name and code, and retried with
 * backoff while the others keep running. (Running components handle their own
 * transient failures: the bus arbiter reopens ports, the MQTT link reconnects.)
 */
export class Supervisor {
  private readonly slots: Slot[] = [];
  private stopping = false;

  constructor(
    private readonly log: Logger,
    private readonly retry: BackoffConfig = { initialMs: 1000, maxMs: 60000 },
  ) {}

  add(component: Component): void {
    this.slots.push({ component, backoff: new Backoff(this.retry), status: 'stopped' });
  }

  async startAll(): Promise<void> {
    for (const slot of this.slots) await this.tryStart(slot);
  }

  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const slot of [...this.slots].reverse()) {
      clearTimeout(slot.timer);
      if (slot.status === 'stopped' || slot.status === 'retrying') {
        slot.status = 'stopped';
        continue;
      }
      slot.status = 'stopping';
      try {
        await slot.component.stop();
      } catch (err) {
        this.log.warn({ err, component: slot.component.name }, 'component stop threw');
      }
      slot.status = 'stopped';
    }
  }

  /** The component whose stop() is running now (stopAll), if any: what a stop that hangs waits on. */
  stoppingNow(): string | undefined {
    return this.slots.find((s) => s.status === 'stopping')?.component.name;
  }

  private async tryStart(slot: Slot): Promise<void> {
    if (this.stopping) return;
    slot.status = 'starting';
    try {
      await slot.component.start();
      slot.status = 'running';
      slot.backoff.reset();
      this.log.info({ component: slot.component.name }, 'component started');
    } catch (cause) {
      const err = cause instanceof GuardianError
        ? cause
        : new GuardianError('GUARDIAN_E_COMPONENT_START', `${slot.component.name} did not start: ${(cause as Error).message}`, { component: slot.component.name }, { cause });
      this.log.error({ err, component: slot.component.name }, joinOnce(`${slot.component.name} did not start`, err.message)); // the wrapped message says it already
      this.scheduleRetry(slot, err.message);
    }
  }

  private scheduleRetry(slot: Slot, reason: string): void {
    if (this.stopping) return;
    slot.status = 'retrying';
    slot.lastError = reason;
    const delay = slot.backoff.next();
    this.log.info({ component: slot.component.name, retryInMs: delay }, 'component retry scheduled');
    slot.timer = setTimeout(() => void this.tryStart(slot), delay);
  }
}
