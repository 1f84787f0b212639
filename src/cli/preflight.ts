/**
 * The one preflight behind `guardian check-config` and the start of `guardian
 * run` (before the daemon starts anything): what can never work stops both,
 * with the same error and code, so "check-config says OK" means `run` starts.
 * In order; the problems of stages 1 and 2 are reported together (one list, the
 * code of the first that failed), stage 3 runs only when both pass:
 * 1. the manifest: there (or how to make one), readable, valid, and allowing what the
 *    config uses (GUARDIAN_E_MANIFEST_READ, …_PARSE, …_INVALID, GUARDIAN_E_FIREWALL_CONFIG);
 * 2. the files the config names: the config file itself, readable TLS files whose
 *    contents are what the daemon needs, the simulated-Pluton device secret, a usable
 *    state directory (a writable mount, its entries of the right type) — as the user the check is for
 *    (GUARDIAN_E_CONFIG_FILES, every problem listed);
 * 3. every key the upstream uses, opened through the key store
 *    (GUARDIAN_E_KEYSTORE_CORRUPT and the other key store codes). A key store
 *    that cannot be reached now (a TPM that is not up yet: a transient code)
 *    is a warning: `run` retries it with backoff.
 * Nothing is created or written. Warnings (exit stays 0) come back as lines.
 */
import { readFileSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import type { GatewayConfig, MqttTlsConfig } from '../config/types.js';
import { GuardianError, isTransient } from '../core/errors.js';
import { ProblemListError } from '../core/problems.js';
import { configWarnings, loadFirewall } from '../firewall/config-coverage.js';
import { ManifestError, type Manifest } from '../firewall/manifest.js';
import type { ConnectionPolicy } from '../firewall/policy.js';
import { chooseBackend } from '../identity/backend.js';
import { checkUpstreamCredentials, needsKeyStore } from '../identity/upstream-credentials.js';
import { tlsContentProblems } from '../upstream/mqtt/tls.js';
import { lookupUser, NO_SUCH_FILE, processUser, readProblem, SERVICE_GROUPS, SERVICE_USER, stateDirProblem, type AccessUser } from './file-access.js';
import { mountProblem, stateEntryProblems } from './state-dir.js';

export interface PreflightOptions {
  /** The config file (named in messages and in the `firewall init` command shown). */
  readonly configFile: string;
  /** Whose access the files are checked for. */
  readonly user: AccessUser;
  /** The key store logs through this. */
  readonly log: Logger;
  /**
   * Called with the policy before the keys are opened: `run` arms its firewall
   * guard here, which fails closed until then (a TPM's tpm2-tools are programs the
   * guard must allow).
   */
  readonly beforeKeys?: (policy: ConnectionPolicy) => unknown;
}

export interface PreflightResult {
  readonly manifest: Manifest;
  readonly policy: ConnectionPolicy;
  /** One line each, without the `warning:` prefix. */
  readonly warnings: readonly string[];
}

/**
 * Whom check-config checks the files for: `--as-user NAME`; else, when run as
 * root on a machine that has the service's user, that user with the unit's
 * supplementary groups (the daemon runs as it); else the calling process.
 */
export function checkUser(asUser: string | undefined): AccessUser {
  if (asUser !== undefined) {
    const user = lookupUser(asUser);
    if (user === undefined) throw new GuardianError('GUARDIAN_E_USAGE', `--as-user ${asUser}: no such user in /etc/passwd`);
    return user;
  }
  const self = processUser();
  if (self.uid !== 0) return self;
  return lookupUser(SERVICE_USER, SERVICE_GROUPS) ?? self;
}

/**
 * The key store's secret file the daemon reads, when the upstream uses the key
 * store: the simulated Pluton device secret. A TPM's owner authorization is not
 * one: creating keys needs it (`identity init`, as root), using them does not, so
 * the daemon never reads it and the service user need not be able to.
 */
function secretFile(config: GatewayConfig): { path: string; file: string } | undefined {
  if (!needsKeyStore(config)) return undefined;
  let backend: ReturnType<typeof chooseBackend>;
  try {
    backend = chooseBackend(config.identity);
  } catch (err) {
    // a damaged root record or a backend mismatch: stage 3 opens the store and reports it with its code
    if (err instanceof GuardianError) return undefined;
    throw err;
  }
  return backend === 'tpm' ? undefined : { path: 'identity.plutonSim.secretFile', file: config.identity.plutonSim.secretFile };
}

/** Every file problem, `<config path>: <file>: <why>` each; the config file itself as `config file: <file>: <why>`. */
export function fileProblems(config: GatewayConfig, user: AccessUser, configFile?: string): string[] {
  const files: { path: string; file: string; hint?: string }[] = [];
  if (configFile !== undefined) files.push({ path: 'config file', file: configFile });
  const tls = config.upstream.mqtt.tls;
  if (tls !== undefined) {
    files.push({ path: 'upstream.mqtt.tls.ca', file: tls.ca });
    if (tls.cert !== undefined) files.push({ path: 'upstream.mqtt.tls.cert', file: tls.cert });
    if (tls.key !== undefined) files.push({ path: 'upstream.mqtt.tls.key', file: tls.key });
  }
  const secret = secretFile(config);
  if (secret !== undefined) files.push({ ...secret, hint: ' (`guardian identity init` creates it)' });
  const problems = files.flatMap(({ path, file, hint }) => {
    const why = readProblem(file, user);
    return why === undefined ? [] : [`${path}: ${file}: ${why}${why === NO_SUCH_FILE ? hint ?? '' : ''}`];
  });
  // the contents only when every TLS file can be read: a key is checked against its certificate
  if (tls !== undefined && !problems.some((p) => p.startsWith('upstream.mqtt.tls.'))) problems.push(...tlsProblems(tls));
  problems.push(...stateProblems(config.gateway.stateDir, user));
  return problems;
}

/** The TLS files' contents as the daemon reads them (src/upstream/mqtt/tls.ts). */
function tlsProblems(tls: MqttTlsConfig): string[] {
  const read = (file: string | undefined): Buffer | undefined => (file === undefined ? undefined : readFileSync(file));
  const cert = read(tls.cert);
  const key = read(tls.key);
  const material = { ca: readFileSync(tls.ca), ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) };
  return tlsContentProblems(tls, material).map((p) => `${p.path}: ${p.file}: ${p.why}`);
}

/** The state directory: usable by the user, on a writable file system, and its entries of the right type. */
function stateProblems(dir: string, user: AccessUser): string[] {
  const state = stateDirProblem(dir, user) ?? mountProblem(dir);
  if (state !== undefined) return [`gateway.stateDir: ${dir}: ${state}`];
  return stateEntryProblems(dir).map((p) => `gateway.stateDir: ${p}`);
}

/**
 * The manifest stage's error, or undefined when it passes. Its problems are
 * reported together with the file stage's (one list, the manifest stage's code),
 * so a fresh machine sees everything to fix at once.
 */
function manifestStage(config: GatewayConfig, options: PreflightOptions): { manifest: Manifest; policy: ConnectionPolicy } | ProblemListError {
  const manifestFile = config.firewall.manifest;
  const unreadable = readProblem(manifestFile, options.user);
  // a missing manifest is loadFirewall's to report: it says how to make one
  if (unreadable !== undefined && unreadable !== NO_SUCH_FILE) return new ManifestError('GUARDIAN_E_MANIFEST_READ', manifestFile, [`firewall.manifest: ${manifestFile}: ${unreadable}`]);
  try {
    return loadFirewall(config, options.configFile);
  } catch (err) {
    if (err instanceof ProblemListError) return err;
    throw err;
  }
}

/** Runs the three stages; throws the first failing stage's error (stages 1 and 2 in one list). */
export async function preflight(config: GatewayConfig, options: PreflightOptions): Promise<PreflightResult> {
  const firewall = manifestStage(config, options);
  const problems = fileProblems(config, options.user, options.configFile);
  if (firewall instanceof ProblemListError) {
    if (problems.length === 0) throw firewall;
    throw new ProblemListError(firewall.code, `${firewall.source} (and the files ${options.configFile} names)`, [...firewall.problems, ...problems]);
  }
  if (problems.length > 0) throw new ProblemListError('GUARDIAN_E_CONFIG_FILES', options.configFile, problems);
  const { manifest, policy } = firewall;
  const warnings = configWarnings(config, manifest);
  options.beforeKeys?.(policy);
  try {
    await checkUpstreamCredentials(config, options.log);
  } catch (err) {
    if (!isTransient(err)) throw err;
    const e = err as GuardianError;
    warnings.push(`identity: the key store is not available now (${e.code}: ${e.message}); \`guardian run\` retries it with backoff`);
  }
  return { manifest, policy, warnings };
}

/** check-config's part: the preflight for `--as-user` (or the service's user), its warnings written as `warning: …` lines. */
export async function checkConfigPreflight(config: GatewayConfig, configFile: string, asUser: string | undefined, write: (text: string) => void): Promise<void> {
  const user = checkUser(asUser);
  const { warnings } = await preflight(config, { configFile, user, log: pino({ level: 'silent' }) });
  for (const w of warnings) write(`warning: ${w}\n`);
  if (user.uid !== processUser().uid) write(`files checked as user ${user.name} (uid ${user.uid})\n`);
}

/** run's part: the preflight for the process itself, `arm` called before the keys are opened; its warnings are logged. */
export async function runPreflight(config: GatewayConfig, configFile: string, log: Logger, arm: (policy: ConnectionPolicy) => unknown): Promise<Omit<PreflightResult, 'warnings'>> {
  const { warnings, ...result } = await preflight(config, { configFile, user: processUser(), log: log.child({ component: 'preflight' }), beforeKeys: arm });
  for (const w of warnings) log.warn({ manifest: config.firewall.manifest }, w);
  return result;
}
