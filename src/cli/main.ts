import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino } from 'pino';
import type { GatewayConfig } from '../config/types.js';
import { GuardianError, toGuardianError } from '../core/errors.js';
import { countProblems, ProblemListError } from '../core/problems.js';
import { formatPlan, planDevice } from '../downstream/modbus/planner.js';
import { DEFAULT_MANIFEST_PATH } from '../firewall/manifest.js';
import { DEFAULT_CONFIG_PATH } from '../config/error.js';
import { Daemon, installFatalHandlers, runUntilSignal, VERSION } from '../daemon/daemon.js';
import { FailureStore, LogRing } from '../health/failure-store.js';
import { armGuard } from '../daemon/guard-arming.js';
import { manifestFor } from '../firewall/config-coverage.js';
import type { ConnectionPolicy } from '../firewall/policy.js';
import { runPreflight } from './preflight.js';
import { createLogger } from '../daemon/logger.js';

const HELP = `guardian ${VERSION} — a hardened gateway for legacy equipment

Usage:
  guardian run [--config FILE] [--allow-preload]
                                        run the gateway (default config ${DEFAULT_CONFIG_PATH}); it refuses
                                        code preloaded before its firewall (--import, NODE_OPTIONS) unless
                                        --allow-preload is given
  guardian check-config [FILE] [--as-user NAME]
                                        validate a config, the files it names (as the service's user) and its keys;
                                        prints every problem, exits 1 if any; OK means \`run\` starts
  guardian check-manifest [FILE]        validate an app_manifest.json (default ${DEFAULT_MANIFEST_PATH})
  guardian firewall render --nftables [--manifest FILE] [--user U | --cgroup PATH]
                                        print the nftables ruleset the manifest allows
  guardian firewall render --systemd [--manifest FILE]
                                        print the systemd drop-in (IPAddressAllow, SocketBindAllow, DeviceAllow)
  guardian firewall apply [--manifest FILE] [--watch [--interval S]]
                                        load the ruleset (root); --watch keeps its host-name sets current
  guardian firewall init [--config FILE]  print a manifest that allows what the config uses
  guardian identity init [--config FILE]   provision the key store (TPM, or the simulated Pluton store) and the device keys
  guardian identity show [--json]         device id, backend, public keys, fingerprints, certificates
  guardian identity csr --subject DN [--key identity|tls]
                                        print a PKCS#10 request signed by that key
  guardian identity install-cert FILE     store the certificate issued for the identity or TLS key (checked against it)
  guardian identity import-sas-key        read the IoT Hub symmetric key (base64) from stdin into the key store
  guardian identity attest --nonce HEX [--pcrs SEL] [--out DIR]
                                        a TPM quote over the PCRs with the verifier's nonce, the EK and its certificate
  guardian identity activate-credential FILE
                                        decrypt a verifier's tpm2_makecredential challenge (binds the AK to the EK)
  guardian plan [--config FILE]         print the Modbus request plan (register coalescing)
  guardian status [--config FILE] [--json]  outbox depth and stored failure reports
  guardian demo [--port N]              run the demo: simulated device + embedded broker, no config
  guardian watch [--url URL] [--topic T]  print messages from a broker (default the demo's)
  guardian help | --version

Exit codes: 0 ok, 1 failed (invalid config, runtime error), 2 usage error.`;

function configPath(values: { config?: string | undefined }, positionals: string[]): string {
  return values.config ?? positionals[0] ?? DEFAULT_CONFIG_PATH;
}

function printError(err: unknown): void {
  if (err instanceof ProblemListError) {
    process.stderr.write(`guardian: ${err.code}: ${err.source} has ${countProblems(err.problems.length)}:\n`);
    for (const line of err.problems) process.stderr.write(`${line}\n`);
    return;
  }
  const e = toGuardianError(err);
  process.stderr.write(`guardian: ${e.code}: ${e.message}\n  ${e.hint}\n`);
}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  port: { type: 'string' },
  url: { type: 'string' },
  topic: { type: 'string' },
  json: { type: 'boolean' },
  manifest: { type: 'string' },
  nftables: { type: 'boolean' },
  systemd: { type: 'boolean' },
  user: { type: 'string' },
  cgroup: { type: 'string' },
  watch: { type: 'boolean' },
  interval: { type: 'string' },
  subject: { type: 'string' },
  key: { type: 'string' },
  nonce: { type: 'string' },
  pcrs: { type: 'string' },
  out: { type: 'string' },
  'allow-preload': { type: 'boolean' },
  'as-user': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

function parse(args: string[]) {
  return parseArgs({ args, allowPositionals: true, options: OPTIONS });
}

type Values = ReturnType<typeof parse>['values'];

/** One command: its parsed options and positionals in, the exit code out. */
type Command = (values: Values, positionals: string[]) => Promise<number>;

async function loadConfigFrom(path: string): Promise<GatewayConfig> {
  return (await import('../config/load.js')).loadConfig(path);
}

async function checkConfig(values: Values, positionals: string[]): Promise<number> {
  const path = configPath(values, positionals);
  const config = await loadConfigFrom(path);
  const { checkConfigPreflight } = await import('./preflight.js');
  await checkConfigPreflight(config, path, values['as-user'], (text) => process.stderr.write(text));
  const devices = config.buses.flatMap((b) => b.devices);
  const points = devices.reduce((n, d) => n + d.points.length, 0);
  process.stdout.write(`${path}: OK (${config.buses.length} buses, ${devices.length} devices, ${points} points)\n`);
  return 0;
}

async function checkManifest(_values: Values, positionals: string[]): Promise<number> {
  const path = positionals[0] ?? DEFAULT_MANIFEST_PATH;
  const m = (await import('../firewall/manifest.js')).loadManifest(path);
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

async function firewall(values: Values, positionals: string[]): Promise<number> {
  const [sub] = positionals;
  if (sub === 'init') {
    const config = await loadConfigFrom(values.config ?? positionals[1] ?? DEFAULT_CONFIG_PATH);
    process.stdout.write(`${JSON.stringify(manifestFor(config), null, 2)}\n`);
    return 0;
  }
  const { firewallCommand } = await import('./firewall.js');
  return firewallCommand(sub, values, (text) => process.stdout.write(text), (text) => process.stderr.write(`guardian: ${text}\n`));
}

async function identity(values: Values, positionals: string[]): Promise<number> {
  const [sub, file] = positionals;
  const config = await loadConfigFrom(values.config ?? DEFAULT_CONFIG_PATH);
  const { identityCommand } = await import('./identity.js');
  // logs go to stderr: stdout carries the CSR, the quote or the report
  const log = createLogger(process.env['GUARDIAN_LOG_LEVEL'] ?? 'warn', pino.destination(2));
  return identityCommand(sub, file, values, config, log, { out: (text) => process.stdout.write(text), readStdin });
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
  const path = configPath(values, positionals);
  const config = await loadConfigFrom(path);
  const ring = new LogRing();
  const log = createLogger(config.gateway.logLevel, undefined, ring);
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
  ['firewall', firewall],
  ['identity', identity],
  ['plan', plan],
  ['status', statusCommand],
  ['run', run],
  // The demo (with its embedded broker) and watch are loaded only when asked for,
  // so `guardian run` carries neither in memory.
  ['demo', async (values) => (await import('./demo/demo.js')).runDemo(values.port ?? process.env['GUARDIAN_DEMO_PORT'])],
  ['watch', async (values) => (await import('./watch.js')).watch(values.url ?? `mqtt://127.0.0.1:${process.env['GUARDIAN_DEMO_PORT'] ?? '1883'}`, values.topic ?? 'guardian/#')],
]);

async function dispatch(command: string, args: string[]): Promise<number> {
  const { values, positionals } = parse(args); // options first: a bad option is a usage error for every command
  const handler = COMMANDS.get(command);
  if (handler === undefined) throw new GuardianError('GUARDIAN_E_USAGE', `unknown command '${command}'`);
  return handler(values, positionals);
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The CLI: returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${HELP}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  try {
    return await dispatch(command, args);
  } catch (caught) {
    const parseArgsError = String((caught as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
    const err = parseArgsError ? new GuardianError('GUARDIAN_E_USAGE', (caught as Error).message, {}, { cause: caught }) : caught;
    printError(err);
    return err instanceof GuardianError && err.code === 'GUARDIAN_E_USAGE' ? 2 : 1;
  }
}
