/**
 * The timing of a serial line, from its framing alone: shared by the config's
 * semantic checks (config/semantic.ts) and the serial transports (downstream/),
 * so it sits below both.
 *
 * The silence the Modbus serial line specification (Modbus over Serial Line V1.02,
 * 2.5.1.1) requires between two RTU frames: at least 3.5 character times (t3.5),
 * fixed at 1.75 ms above 19,200 baud. A character on the line is a start bit, the
 * data bits, the parity bit (when there is one) and the stop bits: 11 bits for 8E1 or 8N2, 10
 * for 8N1.
 */

/** A serial line's framing (the config's serial bus has these fields). */
export interface SerialFraming {
  readonly baudRate: number;
  readonly parity: 'none' | 'even' | 'odd';
  readonly dataBits: 7 | 8;
  readonly stopBits: 1 | 2;
}

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

