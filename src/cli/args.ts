/**
 * Per-command option parsing: each command accepts only its own options and the
 * number of arguments it takes (src/cli/commands.ts); anything else is a usage
 * error (GUARDIAN_E_USAGE) that names the option or argument, the command, and
 * `guardian <command> --help`. Option values are checked here, before any
 * config is read or any key store is opened.
 */
import { parseArgs } from 'node:util';
import { GuardianError } from '../core/errors.js';
import { shownText } from '../core/shown.js';
import { suggestKey } from '../core/schema-errors.js';
import { parseBrokerUrl } from '../core/endpoint.js';
import { hasUserinfo, redactUrl } from '../core/redact.js';
import { LOG_FORMATS } from '../daemon/log-format.js';

export interface OptionDef {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The placeholder of its value in usage texts (string options). */
  readonly value?: string;
  readonly help: string;
  /** What is wrong with a value (undefined: it is fine). */
  readonly check?: (value: string) => string | undefined;
}

const PORT = /^[0-9]{1,5}$/;
const HEX = /^(?:[0-9a-fA-F]{2}){1,32}$/;
const PCR_BANK = '(sha1|sha256|sha384|sha512):[0-9]{1,2}(,[0-9]{1,2})*';
const PCRS = new RegExp(`^${PCR_BANK}(\\+${PCR_BANK})*$`);
/** A user name as useradd takes it, or a numeric uid. */
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const USER = /^(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})$/;
/** A cgroup v2 path below the root: words, dots, dashes, @ and backslash-free escapes only (it is quoted into nft). */
const CGROUP = /^[A-Za-z0-9_.@:-]+(?:\/[A-Za-z0-9_.@:-]+)*$/;

const nonEmpty = (what: string) => (v: string): string | undefined => (v.trim() === '' ? `must be ${what}, not empty` : undefined);

/** A TCP port 1-65535 as --port and GUARDIAN_DEMO_PORT take it. */
export const portValueProblem = (v: string): string | undefined => (PORT.test(v) && Number(v) >= 1 && Number(v) <= 65535 ? undefined : 'must be a TCP port 1-65535');

/** A broker URL by the config's rules (src/core/endpoint.ts); unlike the config, `user:pass@` is allowed here (it is never echoed). */
function checkUrl(v: string): string | undefined {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(v);
  const withoutUser = scheme !== null && hasUserinfo(v) ? `${scheme[0]}${v.slice(v.lastIndexOf('@') + 1)}` : v;
  const parsed = parseBrokerUrl(withoutUser);
  return parsed.ok ? undefined : `must be a broker URL: ${parsed.problem}`;
}

/** An option value as it may be shown: a URL without its credentials, anything with '@' and ':' in it (a password, maybe) not at all. */
function shownValue(name: string, value: string): string {
  if (name !== 'url') return redactUrl(value);
  const redacted = redactUrl(value);
  return redacted === value && value.includes('@') ? REDACTED_VALUE : redacted;
}
const REDACTED_VALUE = '*** (not shown: it may hold a password)';

function checkTopic(v: string): string | undefined {
  const levels = v.split('/');
  const wildcardOk = levels.every((l, i) => (l === '#' ? i === levels.length - 1 : l === '+' || !/[#+]/.test(l)));
  return v === '' || !wildcardOk ? 'must be an MQTT topic filter (# only as the last level, + as a whole level)' : undefined;
}

/** Every option any command takes; a command lists the ones it accepts (commands.ts). */
export const OPTIONS = {
  config: { type: 'string', short: 'c', value: 'FILE', help: 'the config file', check: nonEmpty('a file') },
  manifest: { type: 'string', value: 'FILE', help: 'the app_manifest.json', check: nonEmpty('a file') },
  'log-format': {
    type: 'string', value: 'FORMAT', help: `how logs are written: ${LOG_FORMATS.join(', ')} (auto: pretty at a terminal, JSON under journald or in a pipe)`,
    check: (v) => ((LOG_FORMATS as readonly string[]).includes(v) ? undefined : `must be one of ${LOG_FORMATS.join(', ')}`),
  },
  'as-user': {
    type: 'string', value: 'NAME', help: 'check the files as this user (default: guardian when run as root and that user exists, else yourself)',
    check: (v) => (USER_NAME.test(v) ? undefined : 'must be a user name (as in /etc/passwd)'),
  },
  'allow-preload': { type: 'boolean', help: 'start even with code preloaded before the firewall (--import, NODE_OPTIONS); see the README' },
  json: { type: 'boolean', help: 'print JSON instead of text' },
  nftables: { type: 'boolean', help: 'print the nftables ruleset' },
  systemd: { type: 'boolean', help: 'print the systemd drop-in (IPAddressAllow, SocketBindAllow, DeviceAllow)' },
  user: { type: 'string', value: 'U', help: 'filter the traffic of this user (name or uid; default guardian)', check: (v) => (USER.test(v) ? undefined : 'must be a user name or a numeric uid') },
  cgroup: { type: 'string', value: 'PATH', help: "filter the traffic of this cgroup v2 path (e.g. system.slice/guardian.service) instead of a user", check: (v) => (CGROUP.test(v) ? undefined : 'must be a cgroup v2 path such as system.slice/guardian.service') },
  'allow-unresolved': { type: 'boolean', help: 'a manifest host name that does not resolve gets no rule (a warning) instead of an error' },
  watch: { type: 'boolean', help: 'keep running and keep the host-name sets current' },
  interval: { type: 'string', value: 'S', help: 'seconds between host-name lookups with --watch (default 60)', check: (v) => (/^[0-9]+$/.test(v) && Number(v) >= 1 ? undefined : 'must be a whole number of seconds >= 1') },
  subject: { type: 'string', value: 'DN', help: 'the subject of the request, e.g. "CN=gw-7, O=Plant 7"', check: nonEmpty('a distinguished name') },
  key: { type: 'string', value: 'KEY', help: 'which key signs: identity (default) or tls', check: (v) => (v === 'identity' || v === 'tls' ? undefined : 'must be identity or tls') },
  nonce: { type: 'string', value: 'HEX', help: "the verifier's nonce, 1-32 bytes in hex", check: (v) => (HEX.test(v) ? undefined : 'must be 1-32 bytes in hex (an even number of 0-9a-f digits)') },
  pcrs: { type: 'string', value: 'SEL', help: 'the PCR selection, e.g. sha256:0,1,2,3,7 (default identity.attestPcrs)', check: (v) => (PCRS.test(v) ? undefined : 'must be a PCR selection such as sha256:0,1,2,3,7') },
  out: { type: 'string', value: 'DIR', help: 'write one file per part into this directory instead of JSON on stdout', check: nonEmpty('a directory') },
  port: { type: 'string', value: 'N', help: 'the embedded broker port (default 1883, or GUARDIAN_DEMO_PORT)', check: portValueProblem },
  url: { type: 'string', value: 'URL', help: "the broker (default the demo's, mqtt://127.0.0.1:1883)", check: checkUrl },
  topic: { type: 'string', value: 'T', help: 'the topic filter (default guardian/#)', check: checkTopic },
} as const satisfies Readonly<Record<string, OptionDef>>;

export type OptionName = keyof typeof OPTIONS;

/** The parsed options of a command, typed by the option table. */
export type Values = { -readonly [K in OptionName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

/** An argument: when `option` is set, it may be given as that option instead (not both). */
export interface PositionalSpec { readonly name: string; readonly help: string; readonly required?: boolean; readonly option?: OptionName }

export interface CommandSpec {
  /** `run`, `firewall render`. */
  readonly path: string;
  readonly summary: string;
  readonly options: readonly OptionName[];
  /** Better help for an option in this command than the table's. */
  readonly optionHelp?: Partial<Readonly<Record<OptionName, string>>>;
  readonly positionals?: readonly PositionalSpec[];
  /** Exactly one of each group must be given. */
  readonly exactlyOne?: readonly (readonly OptionName[])[];
  /** At most one of each group. */
  readonly atMostOne?: readonly (readonly OptionName[])[];
  readonly required?: readonly OptionName[];
  /** An option that only means something with another one. */
  readonly needs?: Partial<Readonly<Record<OptionName, OptionName>>>;
  readonly details?: readonly string[];
  readonly examples: readonly string[];
}

export interface Parsed { readonly values: Values; readonly positionals: string[]; readonly help: boolean }

export function usageError(spec: CommandSpec, message: string): GuardianError {
  return new GuardianError('GUARDIAN_E_USAGE', `guardian ${spec.path}: ${message}; see \`guardian ${spec.path} --help\``, { command: spec.path });
}

const flag = (name: string): string => `--${name}`;

function unknownOption(spec: CommandSpec, raw: string, name: string): GuardianError {
  const close = suggestKey(name, spec.options);
  return usageError(spec, `unknown option '${raw}'${close === undefined ? '' : ` (did you mean ${flag(close)}?)`}`);
}

type Token = NonNullable<ReturnType<typeof parseArgs>['tokens']>[number];

function checkToken(spec: CommandSpec, token: Token & { kind: 'option' }): void {
  const { name, rawName, value, inlineValue } = token;
  if (name === 'help' || (name === 'h' && rawName === '-h')) return;
  const def = (spec.options as readonly string[]).includes(name) ? (OPTIONS as Readonly<Record<string, OptionDef>>)[name] : undefined;
  if (def === undefined) throw unknownOption(spec, rawName, name);
  if (def.type === 'boolean') {
    if (inlineValue === true) throw usageError(spec, `option ${rawName} takes no value (got '${String(value)}')`);
    return;
  }
  if (value === undefined || (inlineValue !== true && value.startsWith('--'))) throw usageError(spec, `option ${rawName} needs a value (${def.value ?? 'VALUE'})`);
  const problem = def.check?.(value);
  if (problem !== undefined) throw usageError(spec, `option ${flag(name)} ${problem} (got ${shownText(shownValue(name, value))})`);
}

function checkCombinations(spec: CommandSpec, values: Values): void {
  const given = (names: readonly OptionName[]): OptionName[] => names.filter((n) => values[n] !== undefined);
  for (const group of spec.exactlyOne ?? []) {
    if (given(group).length !== 1) throw usageError(spec, `needs exactly one of ${group.map(flag).join(' and ')}`);
  }
  for (const group of spec.atMostOne ?? []) {
    const both = given(group);
    if (both.length > 1) throw usageError(spec, `${both.map(flag).join(' and ')} exclude each other: give one`);
  }
  for (const name of spec.required ?? []) {
    if (values[name] === undefined) throw usageError(spec, `needs ${flag(name)} ${OPTIONS[name].type === 'string' ? (OPTIONS[name] as OptionDef).value ?? '' : ''}`.trimEnd());
  }
  for (const [name, needed] of Object.entries(spec.needs ?? {}) as [OptionName, OptionName][]) {
    if (values[name] !== undefined && values[needed] === undefined) throw usageError(spec, `${flag(name)} only applies with ${flag(needed)}`);
  }
}

/** Positionals beyond what the command takes are errors; one that may also be an option is merged into it. */
function placePositionals(spec: CommandSpec, values: Values, positionals: string[]): string[] {
  const specs = spec.positionals ?? [];
  if (positionals.length > specs.length) {
    const extra = positionals.slice(specs.length).map((p) => `'${p}'`).join(', ');
    const takes = specs.length === 0 ? 'takes no arguments' : `takes ${specs.length === 1 ? 'one argument' : `${specs.length} arguments`} (${specs.map((p) => p.name).join(' ')})`;
    throw usageError(spec, `${takes}; extra: ${extra}`);
  }
  const rest: string[] = [];
  specs.forEach((p, i) => {
    const arg = positionals[i];
    if (p.option !== undefined) {
      if (arg !== undefined && values[p.option] !== undefined) throw usageError(spec, `give ${p.name} either as an argument or with ${flag(p.option)}, not both`);
      if (arg !== undefined) (values as Record<string, string | boolean | undefined>)[p.option] = arg;
    } else if (arg !== undefined) rest.push(arg);
    if (p.required === true && arg === undefined && (p.option === undefined || values[p.option] === undefined)) throw usageError(spec, `needs ${p.name}`);
  });
  return rest;
}

/** Each option at most once (the last would win silently otherwise): the second one is a usage error naming it. */
function checkRepeated(spec: CommandSpec, opts: readonly (Token & { kind: 'option' })[]): void {
  const seen = new Set<string>();
  for (const { name, rawName } of opts) {
    if (name === 'help' || name === 'h') continue;
    if (seen.has(name)) throw usageError(spec, `option ${rawName === flag(name) ? rawName : `${rawName} (${flag(name)})`} is given more than once: give it once`);
    seen.add(name);
  }
}

/**
 * Parse a command's arguments against its spec. `help` when --help or -h was
 * given and every other option is one the command takes, with a valid value,
 * given once (arguments and combinations are not checked then).
 */
export function parseCommand(spec: CommandSpec, args: readonly string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const name of spec.options) {
    const def: OptionDef = OPTIONS[name];
    options[name] = def.short === undefined ? { type: def.type } : { type: def.type, short: def.short };
  }
  const { values, positionals, tokens } = parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });
  const opts = tokens.filter((tk): tk is Token & { kind: 'option' } => tk.kind === 'option');
  for (const token of opts) checkToken(spec, token);
  checkRepeated(spec, opts);
  if (opts.some((tk) => tk.rawName === '--help' || tk.rawName === '-h')) return { values: {}, positionals: [], help: true };
  const typed = values as Values;
  const rest = placePositionals(spec, typed, positionals);
  checkCombinations(spec, typed);
  return { values: typed, positionals: rest, help: false };
}
