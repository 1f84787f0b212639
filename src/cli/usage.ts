/** The help texts, all made from the command table (commands.ts). */
import { GuardianError } from '../core/errors.js';
import { suggestKey } from '../core/schema-errors.js';
import { OPTIONS, type CommandSpec, type OptionDef, type OptionName } from './args.js';
import { COMMAND_SPECS, commandSpec, GROUPS, subcommands, topLevelNames } from './commands.js';

export const EXIT_CODES = [
  '0 ok',
  '1 failed (invalid config or manifest, runtime error)',
  '2 usage error',
  '3 `run` stopped, but messages stayed in the outbox (they are sent at the next start)',
  '4 `run` did not finish stopping in time (the component that hung is logged)',
];

function optionWithValue(name: OptionName): string {
  const def: OptionDef = OPTIONS[name];
  return def.type === 'string' ? `--${name} ${def.value ?? 'VALUE'}` : `--${name}`;
}

/** `guardian firewall render --nftables|--systemd [--manifest FILE] [--user U | --cgroup PATH] …` */
export function usageLine(spec: CommandSpec): string {
  const done = new Set<OptionName>();
  const parts: string[] = [];
  for (const group of spec.exactlyOne ?? []) {
    parts.push(group.map(optionWithValue).join('|'));
    group.forEach((n) => done.add(n));
  }
  for (const name of spec.required ?? []) {
    parts.push(optionWithValue(name));
    done.add(name);
  }
  const alternatives = new Map((spec.positionals ?? []).filter((p) => p.option !== undefined).map((p) => [p.option, p.name]));
  for (const name of spec.options) {
    if (done.has(name)) continue;
    const group = spec.atMostOne?.find((g) => g.includes(name));
    if (group !== undefined) {
      parts.push(`[${group.map(optionWithValue).join(' | ')}]`);
      group.forEach((n) => done.add(n));
      continue;
    }
    const alt = alternatives.get(name);
    parts.push(alt === undefined ? `[${optionWithValue(name)}]` : `[${optionWithValue(name)} | ${alt}]`);
    done.add(name);
  }
  for (const p of spec.positionals ?? []) {
    if (p.option === undefined) parts.push(p.required === true ? p.name : `[${p.name}]`);
  }
  return ['guardian', spec.path, ...parts].join(' ');
}

function table(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`);
}

/** `guardian <command> --help`. */
export function commandUsage(spec: CommandSpec): string {
  const options = spec.options.map((name): [string, string] => {
    const def: OptionDef = OPTIONS[name];
    return [`${def.short === undefined ? '' : `-${def.short}, `}${optionWithValue(name)}`, spec.optionHelp?.[name] ?? def.help];
  });
  options.push(['-h, --help', 'print this help']);
  const args = (spec.positionals ?? []).map((p): [string, string] => [p.name, p.help]);
  return [
    `guardian ${spec.path} — ${spec.summary}`,
    '',
    'Usage:',
    `  ${usageLine(spec)}`,
    ...(args.length === 0 ? [] : ['', 'Arguments:', ...table(args)]),
    '',
    'Options:',
    ...table(options),
    ...(spec.details === undefined ? [] : ['', ...spec.details]),
    '',
    spec.examples.length === 1 ? 'Example:' : 'Examples:',
    ...spec.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

/** `guardian firewall` (no subcommand), `guardian firewall --help`. */
export function groupUsage(group: string): string {
  const subs = subcommands(group);
  return [
    `guardian ${group} — ${GROUPS.get(group) ?? ''}`,
    '',
    'Usage:',
    ...subs.map((s) => `  ${usageLine(s)}`),
    '',
    'Commands:',
    ...table(subs.map((s) => [s.path.slice(group.length + 1), s.summary])),
    '',
    `Run \`guardian ${group} <command> --help\` for a command's options.`,
    '',
  ].join('\n');
}

/** `guardian`, `guardian help`, `guardian --help`. */
export function overview(version: string): string {
  const rows: [string, string][] = [];
  for (const spec of COMMAND_SPECS) {
    const group = spec.path.split(' ')[0] ?? '';
    if (GROUPS.has(group) && spec === subcommands(group)[0]) rows.push([`${group} <command>`, GROUPS.get(group) ?? '']);
    if (!GROUPS.has(group)) rows.push([spec.path, spec.summary]);
  }
  return [
    `guardian ${version} — a hardened gateway for legacy equipment`,
    '',
    'Usage:',
    ...COMMAND_SPECS.map((s) => `  ${usageLine(s)}`),
    '',
    'Commands:',
    ...table(rows),
    '',
    'Run `guardian <command> --help` (or `guardian help <command>`) for its options and an example.',
    '',
    'Exit codes:',
    ...EXIT_CODES.map((c) => `  ${c}`),
    '',
  ].join('\n');
}

/** The usage error for a command or subcommand name that does not exist, with the closest one. */
export function unknownCommand(name: string, group?: string): GuardianError {
  const known = group === undefined ? topLevelNames() : subcommands(group).map((s) => s.path.slice(group.length + 1));
  const close = suggestKey(name, known);
  const what = group === undefined ? 'command' : `${group} command`;
  // the hint says where the list is (`guardian help`); a group's subcommands are all named here
  return new GuardianError('GUARDIAN_E_USAGE', `unknown ${what} '${name}' (${close === undefined ? known.join(', ') : `did you mean '${close}'?`})`, { command: name });
}

/** The help text for `guardian help WORDS…` (a command, a group, or a group's subcommand). */
export function helpFor(words: readonly string[]): string {
  const [first, second] = words;
  if (first === undefined) throw new GuardianError('GUARDIAN_E_INTERNAL', 'helpFor needs a command');
  if (GROUPS.has(first)) {
    if (second === undefined) return groupUsage(first);
    const spec = commandSpec(`${first} ${second}`);
    if (spec === undefined) throw unknownCommand(second, first);
    return commandUsage(spec);
  }
  const spec = commandSpec(first);
  if (spec === undefined) throw unknownCommand(first);
  if (second !== undefined) throw new GuardianError('GUARDIAN_E_USAGE', `'${first}' has no subcommands (extra: '${second}'); see \`guardian help ${first}\``, { command: first });
  return commandUsage(spec);
}
