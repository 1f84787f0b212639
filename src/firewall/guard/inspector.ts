/**
 * The inspector: a debugger listener is code execution for any local process,
 * and it opens outside `net.Server.listen` (native code). Refused:
 * `inspector.open()` (the module's and the binding's, patched before the
 * inspector module loads so its saved copy is the guarded one),
 * `process._debugProcess()`, and SIGUSR1 (which starts the inspector on
 * Node 20; a JavaScript listener for SIGUSR1 replaces that native handler, and
 * `--disable-sigusr1` does not exist before Node 22.14). If the listener is
 * removed, SIGUSR1's default action ends the process instead: no debugger.
 */
import { createRequire } from 'node:module';
import { rec, show, type Fn, type GuardContext } from './context.js';

export function installInspectorHooks(ctx: GuardContext, binding: (name: string) => unknown): void {
  const refuse = (what: string, target: string): never => {
    throw ctx.deny('inspector', target, `${what}: a debugger listener lets any local process run code in Guardian`);
  };
  const native = rec(binding('inspector'));
  if (typeof native['open'] === 'function') native['open'] = (...args: unknown[]): unknown => refuse('inspector.open', `${show(args[1] ?? '127.0.0.1')}:${show(args[0] ?? 9229)}`);
  const inspector = rec(createRequire(import.meta.url)('node:inspector'));
  inspector['open'] = (...args: unknown[]): unknown => refuse('inspector.open', `${show(args[1] ?? '127.0.0.1')}:${show(args[0] ?? 9229)}`);
  const debugProcess = rec(process)['_debugProcess'] as Fn | undefined;
  if (debugProcess !== undefined) rec(process)['_debugProcess'] = (pid: unknown): unknown => refuse('process._debugProcess', `pid:${String(pid)}`);
  process.on('SIGUSR1', () => {
    ctx.deny('inspector', 'SIGUSR1', 'SIGUSR1 (would start the inspector on 127.0.0.1:9229)');
  });
}
