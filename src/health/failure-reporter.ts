import type { Logger } from 'pino';
import type { Component, UpstreamAdapter } from '../core/types.js';
import type { FailureStore } from './failure-store.js';
import type { Outbox } from '../outbox/contract.js';

/**
 * Sends stored failure reports upstream (the failure topic) once the link is up,
 * one at a time and at most one per `intervalMs` (a crash loop must not flood the
 * uplink); a report's file is deleted only when the upstream acknowledged it.
 * Outbox drops are reported the same way: one `outboxDrop` report with the count
 * not yet reported, marked reported only once acknowledged.
 */
export class FailureReporter implements Component {
  readonly name = 'failure-reporter';
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private sending = false;
  private lastSent = Number.NEGATIVE_INFINITY;
  private poll: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: FailureStore,
    private readonly outbox: Outbox,
    private readonly upstream: UpstreamAdapter,
    private readonly log: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  async start(): Promise<void> {
    this.running = true;
    this.upstream.on('connected', () => this.kick());
    this.poll = setInterval(() => this.kick(), this.intervalMs);
    this.kick();
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.poll);
    await Promise.resolve();
  }

  /** A report was just written (or the link came up): try to send. */
  kick(): void {
    if (!this.running || this.sending || this.timer !== undefined || !this.upstream.connected) return;
    const wait = this.lastSent + this.intervalMs - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => { this.timer = undefined; this.kick(); }, wait);
      return;
    }
    const [report] = this.store.list();
    const drops = this.outbox.unreportedDrops();
    if (report === undefined && drops === 0) return;
    this.sending = true;
    this.lastSent = performance.now();
    const payload = report ?? { kind: 'outboxDrop', ts: Date.now(), dropped: drops, droppedTotal: this.outbox.stats().dropped };
    this.upstream.publish({ kind: 'failure', payload: JSON.stringify(payload) }).then(
      () => {
        if (report === undefined) {
          this.outbox.markDropsReported(drops);
          this.log.info({ dropped: drops }, 'outbox drops reported');
        } else {
          this.store.remove(report.id);
          this.log.info({ report: report.id, kind: report.kind }, 'failure report delivered');
        }
      },
      (err: unknown) => this.log.debug({ err }, 'failure report not delivered yet'),
    ).finally(() => {
      this.sending = false;
      this.kick();
    });
  }
}
