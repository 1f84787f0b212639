import { join } from 'node:path';
import { FailureStore } from '../health/failure-store.js';
import { readOutboxStatus } from '../outbox/sqlite/read-status.js';

/** `guardian status`: what is waiting in the state directory (works while the daemon runs). */
export function status(stateDir: string, json: boolean): string {
  const outbox = readOutboxStatus(join(stateDir, 'outbox.db'));
  const failures = new FailureStore(stateDir).list();
  if (json) return `${JSON.stringify({ stateDir, outbox: outbox ?? null, failures })}\n`;
  const lines = [`state directory: ${stateDir}`];
  if (outbox === undefined) lines.push('outbox: none yet');
  else {
    const age = outbox.oldestEnqueuedAt === undefined ? '' : `, oldest ${Math.round((Date.now() - outbox.oldestEnqueuedAt) / 1000)} s old`;
    lines.push(`outbox: ${outbox.messages} messages waiting (${outbox.bytes} bytes${age}), ${outbox.dropped} dropped in total`);
  }
  lines.push(`failure reports waiting to be sent: ${failures.length}`);
  for (const r of failures) {
    lines.push(`  ${new Date(r.ts).toISOString()}  ${r.kind}  ${r.error?.name ?? ''}: ${r.error?.message ?? ''}`);
  }
  return `${lines.join('\n')}\n`;
}
