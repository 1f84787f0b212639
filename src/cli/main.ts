import { pino } from 'pino';
import type { GatewayConfig } from '../config/types.js';
import { GuardianError, toGuardianError } from '../core/errors.js';
import { countProblems, ProblemListError, shownProblems } from '../core/problems.js';
import { formatPlan, planDevice } from '../downstream/modbus/planner.js';
import { DEFAULT_MANIFEST_PATH } from '../firewall/manifest.js';
import { DEFAULT_CONFIG_PATH } from '../config/error.js';
import { Daemon, installFatalHandlers, runUntilSignal, VERSION } from '../daemon/daemon.js';
import { parseCommand, portValueProblem, usageError, type CommandSpec, type Values } from './args.js';
import { commandSpec, GROUPS } from './commands.js';
import { commandUsage, groupUsage, helpFor, overview, unknownCommand } from './usage.js';
import { FailureStore, LogRing } from '../health/failure-store.js';
import { armGuard } from '../daemon/guard-arming.js';
import { manifestFor } from '../firewall/config-coverage.js';
import type { ConnectionPolicy } from '../firewall/policy.js';
import { checkConfigPreflight, runPreflight } from './preflight.js';
import { createLogger, parseLogFormat } from '../daemon/logger.js';
import { preloadFlags } from '../firewall/guard/preload.js';
import { lookupUser } from './file-access.js';

function configPath(values: { config?: string | undefined }, positionals: string[]): string {
  return values.config ?? positionals[0] ?? DEFAULT_CONFIG_PATH;
}

function printError(err: unknown): void {
  if (err instanceof ProblemListError) {
    process.stderr.write(`guardian: ${err.code}: ${err.source} has ${countProblems(err.problems.length)}:\n`);
    for (const line of shownProblems(err.problems)) process.stderr.write(`${line}\n`);
    return;
  }
  const e = toGuardianError(err);
  process.stderr.write(`guardian: ${e.code}: ${e.message}\n  ${e.hint}\n`);
}

/** One command: its parsed options and positionals in, the exit code out. */
type Command = (values: Values, positionals: string[]) => Promise<number>;

async function loadConfigFrom(path: string): Promise<GatewayConfig> {
  return (await import('../config/load.js')).loadConfig(path);
}

/** `1 bus`, `2 buses`. */
export function counted(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function specOf(path: string): CommandSpec {
  const found = commandSpec(path);
  if (found === undefined) throw new GuardianError('GUARDIAN_E_INTERNAL', `no spec for the command '${path}'`);
  return found;
}

/** `run` refuses preloaded code (src/cli/entry.ts): check-config says so unless it is asked about `run --allow-preload`. */
function preloadWarning(values: Values): string | undefined {
  const flags = preloadFlags(process.execArgv, process.env['NODE_OPTIONS']);
  if (flags.length === 0 || values['allow-preload'] === true) return undefined;
  return `warning: GUARDIAN_E_PRELOAD: code is preloaded (${flags.join(', ')}): \`guardian run\` with this environment refuses to start; remove it from NODE_OPTIONS or the node command line (or, knowingly, pass --allow-preload to run; see the README)\n`;
}

async function checkConfig(values: Values, positionals: string[]): Promise<number> {
  const asUser = values['as-user'];
  if (asUser !== undefined && lookupUser(asUser) === undefined) throw usageError(specOf('check-config'), `--as-user ${asUser}: no such user in /etc/passwd`);
  const path = configPath(values, positionals);
  const config = await loadConfigFrom(path);
  await checkConfigPreflight(config, path, asUser, (text) => process.stderr.write(text));
  const preload = preloadWarning(values);
  if (preload !== undefined) process.stderr.write(preload);
  const devices = config.buses.flatMap((b) => b.devices);
  const points = devices.reduce((n, d) => n + d.points.length, 0);
  process.stdout.write(`${path}: OK (${counted(config.buses.length, 'bus', 'buses')}, ${counted(devices.length, 'device', 'devices')}, ${counted(points, 'point', 'points')})\n`);
  return 0;
}

/** GUARDIAN_DEMO_PORT, checked like --port (demo and watch read it). */
function demoPortFromEnv(command: string): string | undefined {
  const raw = process.env['GUARDIAN_DEMO_PORT'];
  if (raw === undefined || raw === '') return undefined;
  const problem = portValueProblem(raw);
  if (problem !== undefined) throw usageError(specOf(command), `the environment variable GUARDIAN_DEMO_PORT ${problem} (got '${raw}')`);
  return raw;
}

async function checkManifest(values: Values): Promise<number> {
  const path = values.manifest ?? DEFAULT_MANIFEST_PATH;
  const m = (await import('../firewall/manifest.js')).loadManifest(path);
  for (const w of m.warnings) process.stderr.write(`warning: ${w}\n`);
  const list = (xs: readonly (string | number)[]): string => (xs.length === 0 ? 'none' : xs.join(', '));
  process.stdout.write([
    `${path}: OK (${m.name}, ${m.componentId})`,
    `  outbound allowed to: ${list(m.allowedConnections.map((e) => e.source))}`,
    `  TCP server ports: ${list(m.tcpServerPorts)}; UDP server ports: ${list(m.udpServerPorts)}`,
    `  serial devices: ${list(m.uarts)}`,
    `  writes allowed to: ${list([...m.writePolicy.keys()])}`,
    ...(m.ignored.length === 0 ? [] : [`  ignored (no meaning on Linux): ${m.ignored.join(', ')}`]),
    '',
  ].join('\n'));
  return 0;
}

async function firewallInit(values: Values, positionals: string[]): Promise<number> {
  const config = await loadConfigFrom(configPath(values, positionals));
  process.stdout.write(`${JSON.stringify(manifestFor(config), null, 2)}\n`);
  return 0;
}

function firewall(sub: 'render' | 'apply'): Command {
  return async (values) => {
    const { firewallCommand } = await import('./firewall.js');
    return firewallCommand(sub, values, (text) => process.stdout.write(text), (text) => process.stderr.write(`guardian: ${text}\n`));
  };
}

function identity(sub: string): Command {
  return async (values, positionals) => {
    const config = await loadConfigFrom(values.config ?? DEFAULT_CONFIG_PATH);
    const { identityCommand } = await import('./identity.js');
    // logs go to stderr: stdout carries the CSR, the quote or the report
    // pretty at a terminal, JSON in a pipe or under journald, like run
    const log = createLogger(process.env['GUARDIAN_LOG_LEVEL'] ?? 'warn', pino.destination({ dest: 2, sync: true }), undefined, 'auto', process.stderr.isTTY === true);
    return identityCommand(sub, positionals[0], values, config, log, { out: (text) => process.stdout.write(text), readStdin });
  };
}

async function plan(values: Values, positionals: string[]): Promise<number> {
  const config = await loadConfigFrom(configPath(values, positionals));
  for (const bus of config.buses) {
    process.stdout.write(`bus ${bus.name} (${bus.type})\n`);
    for (const device of bus.devices) process.stdout.write(`${formatPlan(device.name, device.unitId, planDevice(device))}\n`);
  }
  return 0;
}

async function statusCommand(values: Values, positionals: string[]): Promise<number> {
  const config = await loadConfigFrom(configPath(values, positionals));
  const { status } = await import('./status.js');
  process.stdout.write(status(config.gateway.stateDir, values.json === true));
  return 0;
}

async function run(values: Values, positionals: string[]): Promise<number> {
  const logFormat = parseLogFormat(values['log-format']);
  const path = configPath(values, positionals);
  const config = await loadConfigFrom(path);
  const ring = new LogRing();
  const log = createLogger(config.gateway.logLevel, undefined, ring, logFormat);
  installFatalHandlers(log, config.gateway.stateDir, ring);
  // before anything starts: what check-config checks; the guard is armed before the keys are opened
  const arm = (policy: ConnectionPolicy): unknown => armGuard(policy, log.child({ component: 'firewall' }), new FailureStore(config.gateway.stateDir), config.identity.tpm.tcti);
  const { manifest } = await runPreflight(config, path, log, arm);
  if (manifest.ignored.length > 0) log.info({ manifest: config.firewall.manifest, ignored: manifest.ignored }, 'manifest entries with no meaning on Linux are ignored');
  return runUntilSignal(new Daemon(config, manifest, log), log);
}

const COMMANDS: ReadonlyMap<string, Command> = new Map<string, Command>([
  ['check-config', checkConfig],
  ['check-manifest', checkManifest],
  ['firewall render', firewall('render')],
  ['firewall apply', firewall('apply')],
  ['firewall init', firewallInit],
  ...['init', 'show', 'csr', 'install-cert', 'import-sas-key', 'attest', 'activate-credential'].map((sub): [string, Command] => [`identity ${sub}`, identity(sub)]),
  ['plan', plan],
  ['status', statusCommand],
  ['run', run],
  // The demo (with its embedded broker) and watch are loaded only when asked for,
  // so `guardian run` carries neither in memory.
  ['demo', async (values) => (await import('./demo/demo.js')).runDemo(values.port ?? demoPortFromEnv('demo'), values['log-format'])],
  ['watch', async (values) => (await import('./watch.js')).watch(values.url ?? `mqtt://127.0.0.1:${demoPortFromEnv('watch') ?? '1883'}`, values.topic ?? 'guardian/#')],
  ['help', (_values, positionals) => {
    process.stdout.write(positionals.length === 0 ? overview(VERSION) : helpFor(positionals));
    return Promise.resolve(0);
  }],
  ['version', () => {
    process.stdout.write(`${VERSION}\n`);
    return Promise.resolve(0);
  }],
]);

/** Parse the arguments against the command's spec (help when asked for), then run it. */
async function runCommand(spec: CommandSpec, args: readonly string[]): Promise<number> {
  const handler = COMMANDS.get(spec.path);
  if (handler === undefined) throw new GuardianError('GUARDIAN_E_INTERNAL', `no handler for the command '${spec.path}'`);
  const { values, positionals, help } = parseCommand(spec, args);
  if (help) {
    process.stdout.write(commandUsage(spec));
    return 0;
  }
  return handler(values, positionals);
}

/** `guardian firewall …`, `guardian identity …`: the subcommand comes first; without one, the group's usage. */
async function dispatchGroup(group: string, args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(groupUsage(group));
    return sub === undefined ? 2 : 0;
  }
  if (sub.startsWith('-')) throw new GuardianError('GUARDIAN_E_USAGE', `guardian ${group}: the command comes first, then its options (got '${sub}'); see \`guardian ${group} --help\``, { command: group });
  const spec = commandSpec(`${group} ${sub}`);
  if (spec === undefined) throw unknownCommand(sub, group);
  return runCommand(spec, rest);
}

const ALIASES: ReadonlyMap<string, string> = new Map([['--help', 'help'], ['-h', 'help'], ['--version', 'version'], ['-v', 'version']]);

async function dispatch(command: string, args: readonly string[]): Promise<number> {
  if (GROUPS.has(command)) return dispatchGroup(command, args);
  const spec = commandSpec(ALIASES.get(command) ?? command);
  if (spec === undefined) throw unknownCommand(command);
  return runCommand(spec, args);
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The CLI: returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined) {
    process.stdout.write(overview(VERSION));
    return 2;
  }
  try {
    return await dispatch(command, args);
  } catch (err) {
    printError(err);
    return err instanceof GuardianError && err.code === 'GUARDIAN_E_USAGE' ? 2 : 1;
  }
}
