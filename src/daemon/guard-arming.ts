import type { Logger } from 'pino';
import type { GuardianError } from '../core/errors.js';
import { installGuard, preloadFlags, type Denial, type Guard, type GuardPolicy } from '../firewall/guard/index.js';
import { VERSION } from './daemon.js';
import { reportId, type FailureStore } from '../health/failure-store.js';
import { TPM_TOOLS, toolPath } from '../identity/tpm/tools.js';
import { CHECKPOINT_WORKER_CODE } from '../outbox/sqlite/checkpointer.js';
import { SYSTEMD_NOTIFY } from './systemd-notify.js';

/** A denial of the same kind and target is reported upstream at most this often (each one is logged and counted). */
const REPORT_EVERY_MS = 10 * 60_000;

/** What Guardian itself starts: the outbox's checkpoint thread, systemd-notify (the watchdog) and the tpm2 tools (the TPM key store), by absolute path. */
export const TRUSTED_WORKERS: readonly string[] = [CHECKPOINT_WORKER_CODE];
export const TRUSTED_COMMANDS: readonly string[] = [SYSTEMD_NOTIFY, ...TPM_TOOLS.map(toolPath)];
/** The TCTIs of a real TPM; the configured one (identity.tpm.tcti, e.g. a swtpm) is added when the config names it. */
export const DEVICE_TCTI: readonly string[] = ['device:/dev/tpmrm0', 'device:/dev/tpm0'];

/**
 * Arm the in-process guard for `guardian run` and the demo (installing it
 * first if the entry module did not): every refusal is logged
 * (GUARDIAN_E_FIREWALL_DENIED, with the stack that asked), counted, and
 * written as a failure report that the failure reporter sends upstream.
 * `tcti` is the configured TCTI, the only one besides DEVICE_TCTI the tpm2
 * tools may be given.
 */
export function armGuard(policy: GuardPolicy, log: Logger, failures: FailureStore, tcti?: string): Guard {
  const reported = new Map<string, number>();
  const onDenied = ({ kind, target, layer, error }: Denial): void => {
    const stack = new Error('refused here').stack?.split('\n').slice(3, 12).join('\n');
    log.warn({ err: error, code: error.code, kind, target, layer, stack }, error.message);
    const key = `${kind} ${target}`;
    const now = performance.now();
    const last = reported.get(key);
    if (last !== undefined && now - last < REPORT_EVERY_MS) return;
    reported.set(key, now);
    if (reported.size > 1000) reported.delete(reported.keys().next().value as string);
    const ts = Date.now();
    failures.write({
      id: reportId(ts), ts, kind: 'firewallDenied', version: VERSION, pid: process.pid, uptimeS: Math.round(process.uptime()), recentLog: [],
      error: { name: 'GuardianError', code: error.code, message: error.message, ...(stack === undefined ? {} : { stack }) },
    });
  };
  const onFault = (error: GuardianError): void => {
    log.error({ err: error, code: error.code }, error.message);
  };
  const preloaded = preloadFlags(process.execArgv, process.env['NODE_OPTIONS']);
  if (preloaded.length > 0) log.warn({ preloaded }, 'running with code preloaded before the firewall (--allow-preload, or the demo): it may hold unguarded native functions');
  const guard = installGuard({ onFault });
  guard.arm({
    policy,
    trustedWorkers: TRUSTED_WORKERS,
    trustedCommands: TRUSTED_COMMANDS,
    trustedTcti: tcti === undefined ? DEVICE_TCTI : [...DEVICE_TCTI, tcti],
    onDenied,
    onFault,
  });
  return guard;
}
