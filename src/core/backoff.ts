/** `initialMs`, `maxMs`: the config shape of every backoff (config/types.ts re-exports it). */
export interface BackoffConfig {
  readonly initialMs: number;
  readonly maxMs: number;
}

/**
 * Exponential backoff with jitter: the n-th delay is drawn uniformly from
 * [d/2, d] where d = min(max, initial * 2^n). Never a fixed interval, and
 * never zero, so a fleet restarting together spreads out.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly config: BackoffConfig,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call doubles the ceiling. */
  next(): number {
    const ceiling = Math.min(this.config.maxMs, this.config.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.round(ceiling / 2 + this.random() * (ceiling / 2));
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
