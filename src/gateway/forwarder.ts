import type { Logger } from 'pino';
import { toGuardianError } from '../core/errors.js';
import type { Component, UpstreamAdapter } from '../core/types.js';
import type { Outbox } from './outbox/outbox.js';

/**
 * Moves entries from the outbox to the upstream link: a window of at most
 * `maxInFlight` unacknowledged publishes; an entry is acknowledged in the outbox
 * only when the upstream confirmed it, and released back (in order) when the
 * link failed first.
 */
export class Forwarder implements Component {
  readonly name = 'forwarder';
  private inFlight = 0;
  private running = false;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly outbox: Outbox,
    private readonly upstream: UpstreamAdapter,
    private readonly maxInFlight: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.running = true;
    this.outbox.onAppend(() => this.schedule());
    this.upstream.on('connected', () => this.schedule());
    this.schedule();
    await Promise.resolve();
  }

  /** Stop taking new entries; publishes already in flight finish on their own. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.resolve();
  }

  /**
   * Wait until everything queued was confirmed, the link is down, or the
   * deadline passes; resolves true when nothing is left unsent.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { pending, inFlight } = this.outbox.stats();
      if (pending + inFlight === 0) return true;
      const left = deadline - Date.now();
      if (left <= 0 || (!this.upstream.connected && this.inFlight === 0)) return false;
      this.pump(true);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 50));
        this.idleWaiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump(false);
    });
  }

  private pump(draining: boolean): void {
    if ((!this.running && !draining) || !this.upstream.connected) return;
    const room = this.maxInFlight - this.inFlight;
    if (room <= 0) return;
    for (const entry of this.outbox.take(room)) {
      this.inFlight += 1;
      this.upstream.publish(entry.message).then(
        () => {
          this.outbox.ack(entry.id);
          this.settled(draining);
        },
        (err: unknown) => {
          this.outbox.release([entry.id]);
          this.log.debug({ err: toGuardianError(err, 'GUARDIAN_E_MQTT_PUBLISH'), id: entry.id }, 'publish not confirmed; requeued');
          this.settled(draining);
        },
      );
    }
  }

  private settled(draining: boolean): void {
    this.inFlight -= 1;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
    if (draining) this.pump(true);
    else this.schedule();
  }
}
