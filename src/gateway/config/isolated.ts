import { Worker } from 'node:worker_threads';
import type { GatewayConfig } from '../../core/config.js';
import { deepFreeze } from '../../core/freeze.js';
import { GuardianError, type ErrorCode } from '../../core/errors.js';
import { ConfigError } from './config-error.js';

/** What the config worker posts back. */
export type WorkerReply =
  | { readonly ok: true; readonly config: GatewayConfig }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string; readonly source?: string; readonly problems?: readonly string[] };


/**
 * Load and validate the config in a worker thread. The daemon then never loads
 * the YAML parser and the schema validator, and their garbage dies with the
 * worker's heap: a long-running gateway keeps a few MB less resident.
 * Errors are the same as loadConfig's.
 */
export function loadConfigIsolated(path: string): Promise<GatewayConfig> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: path });
    let settled = false;
    worker.once('message', (reply: WorkerReply) => {
      settled = true;
      if (reply.ok) resolve(deepFreeze(reply.config));
      else if (reply.problems !== undefined && (reply.code === 'GUARDIAN_E_CONFIG_PARSE' || reply.code === 'GUARDIAN_E_CONFIG_INVALID')) {
        reject(new ConfigError(reply.code, reply.source ?? path, reply.problems));
      } else reject(new GuardianError(reply.code, reply.message, { path }));
    });
    worker.once('error', (err) => { if (!settled) { settled = true; reject(err); } });
    worker.once('exit', (code) => {
      if (!settled) reject(new GuardianError('GUARDIAN_E_INTERNAL', `config worker exited with ${code} before answering`, { path }));
    });
  });
}
