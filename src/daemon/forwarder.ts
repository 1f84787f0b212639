import type { Logger } from 'pino';
import { toGuardianError } from '../core/errors.js';
import type { Component, UpstreamAdapter } from '../core/types.js';
import type { Outbox, OutboxEntry } from '../outbox/contract.js';

/**
 * Moves entries from the outbox to the upstream link: a window of at most
 * `maxInFlight` unacknowledged publishes; an entry is acknowledged in the outbox
 * only when the upstream confirmed it, and released back (in order) when the
 * link failed first.
 *
 * Two lanes: what was stored before the current connection came up is the
 * backlog, what arrives after it is live. Live data goes first and is never held
 * behind a backlog; the backlog drains in order at up to `drainRatePerS`
 * messages a second (0 = as fast as the link takes it). A device's live messages
 * can therefore overtake its backlog; `seq` orders them.
 */
export class Forwarder implements Component {
  readonly name = 'forwarder';
  private inFlight = 0;
  private running = false;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];
  /** Ids up to this were stored before the current connection: the backlog lane. */
  private boundary = 0;
  private tokens = 0;
  private lastRefill = performance.now(); // monotonic: a wall-clock jump must not stall or burst the drain
  private refillTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly outbox: Outbox,
    private readonly upstream: UpstreamAdapter,
    private readonly maxInFlight: number,
    private readonly log: Logger,
    private readonly drainRatePerS = 0,
  ) {}

  async start(): Promise<void> {
    this.running = true;
    // Right after the commit that made them sendable: no extra event-loop turn on the latency path.
    this.outbox.onAppend(() => this.pump(false));
    this.upstream.on('connected', () => {
      this.boundary = this.outbox.lastId();
      this.tokens = 0;
      this.lastRefill = performance.now();
      // What is staged but not committed yet gets an id above the boundary: it is live.
      const { pending, staged } = this.outbox.stats();
      const backlog = pending - staged;
      if (backlog > 0) this.log.info({ backlog, drainRatePerS: this.drainRatePerS || 'unlimited' }, 'link up: draining the backlog while live data flows');
      this.schedule();
    });
    this.schedule();
    await Promise.resolve();
  }

  /** Stop taking new entries; publishes already in flight finish on their own. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.refillTimer);
    await Promise.resolve();
  }

  /**
   * Wait until everything queued was confirmed, the link is down, or the
   * deadline passes; resolves true when nothing is left unsent.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const { pending, inFlight } = this.outbox.stats();
      if (pending + inFlight === 0) return true;
      const left = deadline - performance.now();
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
    let room = this.maxInFlight - this.inFlight;
    if (room <= 0) return;
    const live = this.outbox.take(room, { from: this.boundary + 1, to: Number.MAX_SAFE_INTEGER });
    room -= live.length;
    let backlog: OutboxEntry[] = [];
    if (room > 0) {
      const allowed = draining || this.drainRatePerS <= 0 ? room : Math.min(room, this.refill());
      if (allowed > 0) backlog = this.outbox.take(allowed, { from: 1, to: this.boundary });
      this.tokens -= backlog.length;
      if (!draining && this.drainRatePerS > 0 && backlog.length === allowed && this.refillTimer === undefined) {
        // More backlog may wait: come back when the bucket has refilled a little.
        this.refillTimer = setTimeout(() => { this.refillTimer = undefined; this.schedule(); }, Math.max(10, 1000 / this.drainRatePerS));
      }
    }
    for (const entry of [...live, ...backlog]) this.send(entry, draining);
  }

  /** Token bucket for the backlog lane: up to one second's worth of messages. */
  private refill(): number {
    const now = performance.now();
    this.tokens = Math.min(this.drainRatePerS, this.tokens + ((now - this.lastRefill) / 1000) * this.drainRatePerS);
    this.lastRefill = now;
    return Math.floor(this.tokens);
  }

  private send(entry: OutboxEntry, draining: boolean): void {
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

  private settled(draining: boolean): void {
    this.inFlight -= 1;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
    if (draining) this.pump(true);
    else this.schedule();
  }
}
