import { pino, type Logger, type DestinationStream } from 'pino';
import { serializeError } from './log-error.js';
import { prettyPrinter, resolveLogFormat, useColor, type LogFormat } from './log-format.js';

export { parseLogFormat, type LogFormat } from './log-format.js';

/** Pretty lines made from each JSON line, written synchronously (a crash's last line is not lost). */
function prettyDestination(colorize: boolean, out: DestinationStream): DestinationStream {
  const pretty = prettyPrinter(colorize);
  return { write: (line: string) => { out.write(pretty(line)); } };
}

/**
 * Logs on stdout: JSON lines (journald keeps them under systemd), or pretty lines for a person
 * at a terminal (`format`, see log-format.ts; default json). Errors are logged as `err` with
 * their code, each cause once, and a stack only when the error is unexpected (log-error.ts).
 * `tee` (the in-memory ring that crash reports quote) always receives the JSON lines.
 */
export function createLogger(level: string, destination?: DestinationStream, tee?: DestinationStream, format: LogFormat = 'json', atTerminal?: boolean): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { err: serializeError },
  };
  // `atTerminal`: whether `destination` is a terminal (the CLI's stderr logs); else stdout's
  const tty = atTerminal ?? (destination === undefined && process.stdout.isTTY === true);
  // stdout written synchronously: an asynchronous write still in flight when a crash exits
  // could land after the fatal line (seen once: the last line was not the fatal one)
  let out = destination ?? pino.destination({ dest: 1, sync: true });
  if (resolveLogFormat(format, tty, process.env) === 'pretty') out = prettyDestination(useColor(tty, process.env), out);
  if (tee !== undefined) {
    const streams = [{ level: 'trace' as const, stream: out }, { level: 'trace' as const, stream: tee }];
    return pino(options, pino.multistream(streams));
  }
  return pino(options, out);
}

export type { Logger };
