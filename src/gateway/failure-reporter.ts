import type { Logger } from 'pino';
import type { Component, UpstreamAdapter } from '../core/types.js';
import type { FailureStore } from './failures.js';

/**
 * Sends stored failure reports upstream (the failure topic) once the link is up,
 * one at a time and at most one per `intervalMs` (a crash loop must not flood the
 * uplink); a report's file is deleted only when the upstream acknowledged it.
 */
export class FailureReporter implements Component {
  readonly name = 'failure-reporter';
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private sending = false;
  private lastSent = 0;

  constructor(
    private readonly store: FailureStore,
    private readonly upstream: UpstreamAdapter,
    private readonly log: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  async start(): Promise<void> {
    this.running = true;
    this.upstream.on('connected', () => this.kick());
    this.kick();
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await Promise.resolve();
  }

  /** A report was just written (or the link came up): try to send. */
  kick(): void {
    if (!this.running || this.sending || this.timer !== undefined || !this.upstream.connected) return;
    const wait = this.lastSent + this.intervalMs - Date.now();
    if (wait > 0) {
      this.timer = setTimeout(() => { this.timer = undefined; this.kick(); }, wait);
      return;
    }
    const [report] = this.store.list();
    if (report === undefined) return;
    this.sending = true;
    this.lastSent = Date.now();
    this.upstream.publish({ kind: 'failure', payload: JSON.stringify(report) }).then(
      () => {
        this.store.remove(report.id);
        this.log.info({ report: report.id, kind: report.kind }, 'failure report delivered');
      },
      (err: unknown) => this.log.debug({ err, report: report.id }, 'failure report not delivered yet'),
    ).finally(() => {
      this.sending = false;
      this.kick();
    });
  }
}
