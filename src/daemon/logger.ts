import { pino, type Logger, type DestinationStream } from 'pino';

/**
 * Structured JSON logs on stdout (journald keeps them under systemd). Errors are
 * logged as `err` with their code; the hint of a GuardianError rides along.
 */
export function createLogger(level: string, destination?: DestinationStream, tee?: DestinationStream): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (tee !== undefined) {
    // Every line also goes to `tee` (the in-memory ring that crash reports quote).
    const streams = [{ level: 'trace' as const, stream: destination ?? pino.destination(1) }, { level: 'trace' as const, stream: tee }];
    return pino(options, pino.multistream(streams));
  }
  return destination === undefined ? pino(options) : pino(options, destination);
}

export type { Logger };
