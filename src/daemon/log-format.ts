/**
 * Pretty or JSON logs (`--log-format auto|pretty|json`). JSON (one object per line, what
 * journald keeps and tests parse) unless a person is reading: `auto` is pretty only when
 * stdout is a terminal and not journald's stream (JOURNAL_STREAM). Pretty lines are made by
 * pino-pretty in this process, synchronously (no transport: a transport is a worker thread,
 * and the in-process guard restricts workers), one line per event: time, level, component,
 * the message with its cause once, the error code, the fields; a stack only for an
 * unexpected error (the serializer dropped it from the others).
 */
import pinoPretty from 'pino-pretty';
import { GuardianError } from '../core/errors.js';
import { joinOnce } from './log-error.js';

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type Env = Readonly<Record<string, string | undefined>>;

/** The `--log-format` option: absent means auto; anything else than the three names is a usage error. */
export function parseLogFormat(raw: string | undefined): LogFormat {
  if (raw === undefined) return 'auto';
  const format = LOG_FORMATS.find((f) => f === raw);
  if (format === undefined) throw new GuardianError('GUARDIAN_E_USAGE', `--log-format must be one of ${LOG_FORMATS.join(', ')} (got '${raw}')`, { option: 'log-format' });
  return format;
}

/** Whether `auto` means pretty: a terminal on stdout, and not under systemd's journal. */
export function resolveLogFormat(format: LogFormat, stdoutIsTTY: boolean, env: Env): 'pretty' | 'json' {
  if (format !== 'auto') return format;
  return stdoutIsTTY && env['JOURNAL_STREAM'] === undefined ? 'pretty' : 'json';
}

/**
 * Colours, as Node itself decides them: FORCE_COLOR wins ('0' or 'false' turn colours off, any
 * other value on), then NO_COLOR (set and not empty: off, https://no-color.org), then a terminal
 * that is not TERM=dumb.
 */
export function useColor(stdoutIsTTY: boolean, env: Env): boolean {
  const force = env['FORCE_COLOR'];
  if (force !== undefined) return force !== '0' && force !== 'false';
  const noColor = env['NO_COLOR'];
  if (noColor !== undefined && noColor !== '') return false;
  return stdoutIsTTY && env['TERM'] !== 'dumb';
}

/** Keys shown by pino-pretty itself (time, level), in the line's head or as continuation lines (a stack the guard's refusals carry); never as `key=value`. */
const HEAD_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'err', 'component', 'code', 'stack']);

function scalar(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (Array.isArray(value)) return value.map(scalar).join(',');
  return JSON.stringify(value) ?? '';
}

/** `key=value` pairs; a nested object one level deep as `key.sub=value`. */
function fields(record: Readonly<Record<string, unknown>>, skip: ReadonlySet<string>, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (skip.has(key) || value === undefined) continue;
    const name = `${prefix}${key}`;
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && prefix === '') out.push(...fields(value as Record<string, unknown>, new Set(), `${name}.`));
    else out.push(`${name}=${scalar(value)}`);
  }
  return out;
}

function record(value: unknown): Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null ? value as Record<string, unknown> : {};
}

/** Continuation lines (a multi-line message, a stack) indented under the event. */
const indent = (text: string): string => text.replace(/\n/g, '\n    ');

/** The part of pino-pretty's colorette colours used here (no-ops without colour). */
export interface Colors {
  gray(text: string): string;
  bold(text: string): string;
}

/** The text after `[time] LEVEL:` — everything a person needs, once. */
export function eventText(log: Readonly<Record<string, unknown>>, colors: Colors): string {
  const err = record(log['err']);
  const msg = typeof log['msg'] === 'string' ? log['msg'] : '';
  const text = typeof err['message'] === 'string' ? joinOnce(msg, err['message']) : msg;
  const code = log['code'] ?? err['code'];
  const component = log['component'];
  // the error's context, without what the line already says (a url or a host named in the message)
  const said = new Set(Object.keys(log));
  for (const [key, value] of Object.entries(record(err['context']))) if (typeof value === 'string' && text.includes(value)) said.add(key);
  const context = fields(record(err['context']), said);
  const parts = [
    typeof component === 'string' ? colors.gray(`(${component})`) : '',
    indent(text),
    typeof code === 'string' ? colors.bold(code) : '',
    ...fields(log, HEAD_KEYS).map((kv) => colors.gray(kv)),
    ...context.map((kv) => colors.gray(kv)),
  ].filter((p) => p !== '');
  const stack = [err['stack'], log['stack']].filter((s) => typeof s === 'string').map((s) => `\n    ${indent(s)}`).join('');
  return parts.join(' ') + stack;
}

/** A synchronous pretty printer for pino's JSON lines (a JSON line in, a text line out). */
export function prettyPrinter(colorize: boolean): (jsonLine: string) => string {
  return pinoPretty.prettyFactory({
    colorize,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    hideObject: true,
    ignore: 'pid,hostname',
    messageFormat: (log, _key, _label, extras) => eventText(log, extras.colors),
  });
}
