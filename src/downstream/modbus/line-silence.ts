/**
 * The silence the Modbus serial line specification (Modbus over Serial Line V1.02,
 * 2.5.1.1) requires between two RTU frames: at least 3.5 character times (t3.5),
 * fixed at 1.75 ms above 19,200 baud. A character on the line is a start bit, the
 * data bits, the parity bit (if any) and the stop bits: 11 bits for 8E1 or 8N2, 10
 * for 8N1.
 */
import type { SerialBusConfig } from '../../config/types.js';

export type SerialFraming = Pick<SerialBusConfig, 'baudRate' | 'parity' | 'dataBits' | 'stopBits'>;

/** Above this rate the spec fixes t3.5 at 1.75 ms (and t1.5 at 0.75 ms). */
export const FIXED_TIMING_ABOVE_BAUD = 19200;
export const FIXED_T35_MS = 1.75;

/** Bits one character occupies on the line. */
export function characterBits(framing: SerialFraming): number {
  return 1 + framing.dataBits + (framing.parity === 'none' ? 0 : 1) + framing.stopBits;
}

/** How long one character takes on the wire, in ms. */
export function characterMs(framing: SerialFraming): number {
  return (characterBits(framing) * 1000) / framing.baudRate;
}

/**
 * t3.5: the minimum silence between two frames, in ms. Never below the fixed
 * 1.75 ms: at 19,200 baud a 9-bit character (7N1) would give 1.64 ms, shorter
 * than the spec asks of any faster line.
 */
export function interFrameSilenceMs(framing: SerialFraming): number {
  return framing.baudRate > FIXED_TIMING_ABOVE_BAUD ? FIXED_T35_MS : Math.max(FIXED_T35_MS, 3.5 * characterMs(framing));
}

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
