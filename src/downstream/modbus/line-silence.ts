/**
 * The line gate of an RTU serial bus: frames wait for the inter-frame silence t3.5
 * (its computation: core/serial-timing.ts, re-exported here).
 */
export { characterMs, interFrameSilenceMs } from '../../core/serial-timing.js';

/** What the gate needs of the port it guards. */
export interface GatedPort {
  readonly isOpen: boolean;
}

/** A request that could not go out because the line never fell silent before its response timeout. */
export interface LineBusy {
  readonly silenceMs: number;
  readonly waitedMs: number;
}

/** What the gate reports to the bus's owner. */
export interface LineEvents {
  /** A frame was not sent: the line was never silent for t3.5 before its request timed out. */
  readonly busy: (busy: LineBusy) => void;
  /** Writing a frame to the port threw. */
  readonly error: (err: unknown) => void;
}

/**
 * Holds every frame Guardian sends on an RTU serial line until the line has been
 * silent for at least `silenceMs` since the end of the last frame on the wire:
 * the last byte received (a response, a late answer, noise) or the last byte of
 * Guardian's own previous frame when nothing came back (estimated from its length
 * and the character time, later if the port's drain says so). Bytes that arrive
 * while a frame waits restart the wait. Times are performance.now() (monotonic); timers
 * are only a way to be woken: the gate re-checks the clock after each one, so a
 * timer that fires early cannot shorten the silence.
 *
 * A frame whose wait would outlast `deadlineMs` (the transaction's response
 * timeout, which started when it was handed in) is not sent at all: its request
 * has already timed out, and an answer to it would arrive during the next one.
 */
export class LineSilence {
  private lastRx = Number.NEGATIVE_INFINITY;
  private lastTxStart = Number.NEGATIVE_INFINITY;
  private lastTxEnd = Number.NEGATIVE_INFINITY;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly silenceMs: number,
    private readonly charMs: number,
    private readonly port: GatedPort,
    private readonly events: LineEvents,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Bytes arrived on the line (call it as they arrive). Bytes after our frame also
   * end the estimate of how long that frame occupies the line: a device answers
   * only once it has the whole frame (and a local echo ends with it), so the frame
   * is off the wire by now, whatever the estimate said (it is pessimistic when the
   * UART is faster than its nominal rate, and on a pseudo-terminal, which has no rate).
   */
  received(): void {
    const now = this.now();
    this.lastRx = now;
    if (now >= this.lastTxStart) this.lastTxEnd = Math.min(this.lastTxEnd, now);
  }

  /** Our own frame has left the UART (a drain completed); once an answer came, that is known already. */
  drained(): void {
    if (this.lastRx < this.lastTxStart) this.lastTxEnd = Math.max(this.lastTxEnd, this.now());
  }

  /** When the line went quiet last, as far as we know. */
  get lastFrameEnd(): number {
    return Math.max(this.lastRx, this.lastTxEnd);
  }

  /**
   * Send `bytes` bytes with `write` once the line has been silent long enough.
   * Frames go out in the order they were handed in.
   */
  send(bytes: number, deadlineMs: number, write: () => void): void {
    const handedIn = this.now();
    this.queue = this.queue
      .then(() => this.sendWhenSilent(bytes, handedIn, handedIn + deadlineMs, write))
      .catch((err: unknown) => this.events.error(err));
  }

  private async sendWhenSilent(bytes: number, handedIn: number, deadline: number, write: () => void): Promise<void> {
    for (;;) {
      const remaining = this.lastFrameEnd + this.silenceMs - this.now();
      if (remaining <= 0) break;
      if (this.now() + remaining > deadline) {
        this.events.busy({ silenceMs: this.silenceMs, waitedMs: this.now() - handedIn });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.ceil(remaining)));
    }
    if (!this.port.isOpen) return; // closed while it waited: the transaction fails with the port
    const start = this.now();
    write();
    this.lastTxStart = start;
    this.lastTxEnd = Math.max(this.lastTxEnd, start + bytes * this.charMs);
  }
}
