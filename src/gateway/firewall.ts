import type { Logger } from 'pino';
import { installGuard, type Denial, type Guard } from '../firewall/guard.js';
import type { ConnectionPolicy } from '../firewall/policy.js';
import { VERSION } from './daemon.js';
import { reportId, type FailureStore } from './failures.js';
import { TPM_TOOLS, toolPath } from '../identity/tpm/tools.js';
import { CHECKPOINT_WORKER_CODE } from './outbox/checkpointer.js';
import { SYSTEMD_NOTIFY } from './watchdog.js';

/** A denial of the same kind and target is reported upstream at most this often (each one is logged and counted). */
const REPORT_EVERY_MS = 10 * 60_000;

/** What Guardian itself starts: the outbox's checkpoint thread, systemd-notify (the watchdog) and the tpm2 tools (the TPM key store). */
export const TRUSTED_WORKERS: readonly string[] = [CHECKPOINT_WORKER_CODE];
export const TRUSTED_COMMANDS: readonly string[] = [SYSTEMD_NOTIFY, ...TPM_TOOLS.map(toolPath)];

/**
 * Arm the in-process guard for `guardian run` and the demo: every refusal is
 * logged (GUARDIAN_E_FIREWALL_DENIED, with the stack that asked), counted, and
 * written as a failure report that the failure reporter sends upstream.
 */
export function armGuard(policy: ConnectionPolicy, log: Logger, failures: FailureStore): Guard {
  const reported = new Map<string, number>();
  return installGuard({
    policy,
    trustedWorkers: TRUSTED_WORKERS,
    trustedCommands: TRUSTED_COMMANDS,
    onDenied: ({ kind, target, error }: Denial) => {
      const stack = new Error('refused here').stack?.split('\n').slice(3, 12).join('\n');
      log.warn({ err: error, code: error.code, kind, target, stack }, error.message);
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
    },
  });
}
