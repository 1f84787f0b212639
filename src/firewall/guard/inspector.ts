/**
 * The inspector: a debugger listener is code execution for any local process,
 * and it opens outside `net.Server.listen` (native code); an in-process
 * `inspector.Session` reads every closure ([[Scopes]]), the guard's saved
 * native functions included. Refused: `inspector.open()` and sessions
 * (`Session#connect`, `Session#connectToMainThread`) — the module's and the
 * binding's (`open`, `Connection`, `MainThreadConnection`), replaced before
 * the inspector module loads so its saved copies are the guarded ones —,
 * `process._debugProcess()`, and SIGUSR1 (which starts the inspector on
 * Node 20; a JavaScript listener for SIGUSR1 replaces that native handler, and
 * `--disable-sigusr1` does not exist before Node 22.14). If the listener is
 * removed, SIGUSR1's default action ends the process instead: no debugger.
 */
import { createRequire } from 'node:module';
import { rec, show, type Fn, type GuardContext } from './context.js';
import { pin } from './primordials.js';

export function installInspectorHooks(ctx: GuardContext, binding: (name: string) => unknown): void {
  const refuse = (what: string, target: string): never => {
    throw ctx.deny('inspector', target, `${what}: a debugger in Guardian lets its user run code and read every secret`);
  };
  const openRefused = (...args: unknown[]): unknown => refuse('inspector.open', `${show(args[1] ?? '127.0.0.1')}:${show(args[0] ?? 9229)}`);
  const native = rec(binding('inspector'));
  if (typeof native['open'] === 'function') pin(native, 'open', openRefused);
  // what Session#connect / #connectToMainThread construct: refused before node:inspector takes its copies
  const sessionRefused = (which: string) => function refusedConnection(): never {
    return refuse(`inspector.Session (${which})`, 'session');
  };
  if (typeof native['Connection'] === 'function') pin(native, 'Connection', sessionRefused('connect'));
  if (typeof native['MainThreadConnection'] === 'function') pin(native, 'MainThreadConnection', sessionRefused('connectToMainThread'));
  const inspector = rec(createRequire(import.meta.url)('node:inspector'));
  pin(inspector, 'open', openRefused);
  // a node:inspector loaded before the guard kept the binding's originals: its Session methods are refused too
  const session = rec(rec(inspector['Session'])['prototype']);
  pin(session, 'connect', sessionRefused('connect'));
  pin(session, 'connectToMainThread', sessionRefused('connectToMainThread'));
  const debugProcess = rec(process)['_debugProcess'] as Fn | undefined;
  if (debugProcess !== undefined) pin(process, '_debugProcess', (pid: unknown): unknown => refuse('process._debugProcess', `pid:${show(pid)}`));
  process.on('SIGUSR1', () => {
    ctx.deny('inspector', 'SIGUSR1', 'SIGUSR1 (would start the inspector on 127.0.0.1:9229)');
  });
}
