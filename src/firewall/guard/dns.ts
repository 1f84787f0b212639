/**
 * DNS at the API (callback, promises, Resolver): only names listed in
 * `AllowedConnections` may be looked up, reverse lookups never (a query is
 * itself a message to the outside), and the servers cannot be changed
 * (`setServers` would send every query wherever it points). cares_wrap
 * underneath is guarded too (handles.ts).
 */
import dns from 'node:dns';
import { rec, show, type Fn, type GuardContext } from './context.js';
import { JSONStringify, ReflectApply, StringCtor, lastFunction, pin } from './primordials.js';

const QUERIES = ['lookup', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx', 'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt'] as const;
const REVERSE = ['lookupService', 'reverse'] as const;

export function installDnsHooks(ctx: GuardContext): void {
  const targets = [
    { target: dns, promises: false },
    { target: dns.promises, promises: true },
    { target: dns.Resolver.prototype, promises: false },
    { target: dns.promises.Resolver.prototype, promises: true },
  ];
  const guard = (target: object, name: string, promises: boolean, refusal: (args: unknown[]) => [string, string, 'lookup' | 'resolver'] | undefined): void => {
    const object = rec(target);
    const original = object[name];
    if (typeof original !== 'function') return;
    pin(object, name, function guardedDns(this: unknown, ...args: unknown[]): unknown {
      const why = refusal(args);
      if (why === undefined) return ReflectApply(original as Fn, this, args);
      const [target, message, kind] = why;
      const err = ctx.deny(kind, target, message);
      if (promises || kind === 'resolver') {
        if (kind === 'resolver') throw err;
        return Promise.reject(err);
      }
      const callback = lastFunction(args);
      if (callback === undefined) throw err;
      process.nextTick(callback, err);
      return undefined;
    });
  };
  for (const { target, promises } of targets) {
    for (const name of QUERIES) {
      // a name that is not a string is refused (node would convert it again, after the check)
      guard(target, name, promises, (args) => {
        const query = args[0];
        return typeof query === 'string' && ctx.policy.allowsLookup(query) ? undefined : [show(query), `DNS lookup of ${show(query)}: the name is not in the manifest's AllowedConnections`, 'lookup'];
      });
    }
    for (const name of REVERSE) guard(target, name, promises, (args) => [show(args[0]), `reverse DNS lookup of ${show(args[0])}`, 'lookup']);
    guard(target, 'setServers', promises, (args) => [typeof args[0] === 'object' ? (JSONStringify(args[0]) ?? 'servers') : StringCtor(args[0]), 'changing the DNS servers (queries would go wherever they point)', 'resolver']);
    guard(target, 'setLocalAddress', promises, (args) => [show(args[0]), 'changing the DNS resolver\'s local address', 'resolver']);
  }
}
