/**
 * DNS at the API (callback, promises, Resolver): only names listed in
 * `AllowedConnections` may be looked up, reverse lookups never (a query is
 * itself a message to the outside), and the servers cannot be changed
 * (`setServers` would send every query wherever it points). cares_wrap
 * underneath is guarded too (handles.ts).
 */
import dns from 'node:dns';
import { rec, type Fn, type GuardContext } from './context.js';

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
    object[name] = function guardedDns(this: unknown, ...args: unknown[]): unknown {
      const why = refusal(args);
      if (why === undefined) return (original as Fn).apply(this, args);
      const [target, message, kind] = why;
      const err = ctx.deny(kind, target, message);
      if (promises || kind === 'resolver') {
        if (kind === 'resolver') throw err;
        return Promise.reject(err);
      }
      const callback = args.findLast((a) => typeof a === 'function') as Fn | undefined;
      if (callback === undefined) throw err;
      process.nextTick(callback, err);
      return undefined;
    };
  };
  for (const { target, promises } of targets) {
    for (const name of QUERIES) {
      guard(target, name, promises, ([query]) => {
        const text = String(query);
        return ctx.policy.allowsLookup(text) ? undefined : [text, `DNS lookup of ${text}: the name is not in the manifest's AllowedConnections`, 'lookup'];
      });
    }
    for (const name of REVERSE) guard(target, name, promises, ([query]) => [String(query), `reverse DNS lookup of ${String(query)}`, 'lookup']);
    guard(target, 'setServers', promises, ([servers]) => [JSON.stringify(servers) ?? String(servers), 'changing the DNS servers (queries would go wherever they point)', 'resolver']);
    guard(target, 'setLocalAddress', promises, ([address]) => [String(address), 'changing the DNS resolver\'s local address', 'resolver']);
  }
}
