// The config worker (see isolated.ts): load, validate, post the result, exit.
import { parentPort, workerData } from 'node:worker_threads';
import { toGuardianError } from '../../core/errors.js';
import type { WorkerReply } from './isolated.js';
import { ConfigError } from './config-error.js';
import { loadConfig } from './load.js';

let reply: WorkerReply;
try {
  reply = { ok: true, config: loadConfig(String(workerData)) };
} catch (err) {
  const e = toGuardianError(err, 'GUARDIAN_E_CONFIG_READ');
  reply = err instanceof ConfigError
    ? { ok: false, code: e.code, message: e.message, source: err.source, problems: err.problems }
    : { ok: false, code: e.code, message: e.message };
}
parentPort?.postMessage(reply);
