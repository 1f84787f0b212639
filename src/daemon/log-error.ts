/**
 * How an error appears in the log (`err`): pino's standard error serializer, with two changes.
 * - Each cause is said once: Guardian's messages already quote their cause (`broker X: connect
 *   ECONNREFUSED …`), and pino appended every cause's message again. A cause's message is added
 *   only when the text so far does not contain it.
 *   A cause's message goes through redactUrl, as every URL Guardian shows does.
 * - An expected error (isExpected: a GuardianError with an operational code) has no `stack`:
 *   a refused connection is not a bug. Anything else keeps its stack, causes included.
 * The shape stays pino's: `type`, `message`, `stack` (when kept), the error's own fields.
 */
import { pino } from 'pino';
import { isExpected } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';

interface ErrorLike {
  readonly message: string;
  readonly cause?: unknown;
}

function isErrorLike(value: unknown): value is ErrorLike {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';
}

/**
 * `a` and `b` joined with ': ', each part once: when one contains the other, the longer one;
 * when `a` ends with the first parts of `b` (`device X: cannot open bus` and `cannot open bus:
 * ECONNREFUSED`), `a` and the rest of `b`.
 */
export function joinOnce(a: string, b: string): string {
  if (b === '' || a.includes(b)) return a;
  if (a === '' || b.includes(a)) return b;
  let overlap = 0;
  for (let k = b.indexOf(': '); k > 0; k = b.indexOf(': ', k + 1)) if (a.endsWith(b.slice(0, k))) overlap = k;
  return overlap > 0 ? a + b.slice(overlap) : `${a}: ${b}`;
}

/** The error's message followed by each cause's message that it does not already contain. */
export function messageOnce(err: ErrorLike): string {
  let text = err.message;
  const seen = new Set<unknown>([err]);
  for (let cause = err.cause; isErrorLike(cause) && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    text = joinOnce(text, redactUrl(cause.message)); // a library's message may quote a URL: never its credentials
  }
  return text;
}

/** The `err` serializer of Guardian's logger. */
export function serializeError(value: unknown): unknown {
  if (!isErrorLike(value)) return value;
  const out = pino.stdSerializers.err(value as Error) as { message: string; stack?: string };
  out.message = messageOnce(value);
  if (isExpected(value)) delete out.stack;
  return out;
}
