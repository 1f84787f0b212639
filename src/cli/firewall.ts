import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { GuardianError } from '../core/errors.js';
import { DEFAULT_MANIFEST_PATH, loadManifest, type Manifest } from '../firewall/manifest.js';
import { renderDnsRefresh, renderNftables, renderSystemd, type Resolutions } from '../firewall/render.js';
import { systemBinary } from '../core/system-bin.js';

const TPM_DEVICES = ['/dev/tpmrm0'];

/** What /etc/resolv.conf tells the stub resolver: the name servers and the search domains. */
export interface ResolverConf { readonly nameservers: string[]; readonly search: string[] }

/** Read /etc/resolv.conf: `nameserver` lines (port 53 to them stays open for the allowed names) and the last `search`/`domain` line. */
export function resolverConf(path = '/etc/resolv.conf'): ResolverConf {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { nameservers: [], search: [] }; // no resolv.conf: no name server is opened (glibc would try 127.0.0.1: fail closed)
  }
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const line of text.split('\n')) {
    const [key, ...values] = line.trim().split(/\s+/);
    if (key === 'nameserver' && values[0] !== undefined) nameservers.push(values[0].replace(/%.*$/, ''));
    if (key === 'search' || key === 'domain') search = values.filter((v) => !v.startsWith('#'));
  }
  return { nameservers, search };
}

/** The name servers of /etc/resolv.conf. */
export function resolvers(path = '/etc/resolv.conf'): string[] {
  return resolverConf(path).nameservers;
}

/** Resolve every host name of the manifest now; a name that does not resolve gets no addresses (and a warning). */
export async function resolveHosts(manifest: Manifest, warn: (message: string) => void): Promise<Map<string, string[]>> {
  const { resolved, failed } = await lookupHosts(manifest);
  for (const [host, reason] of failed) warn(`${host} does not resolve (${reason}): no addresses for it until it does`);
  return resolved;
}

/** Every host name of the manifest, looked up now: the addresses of each (none for a name that failed), and why each failure failed. */
async function lookupHosts(manifest: Manifest): Promise<{ resolved: Map<string, string[]>; failed: Map<string, string> }> {
  const resolved = new Map<string, string[]>();
  const failed = new Map<string, string>();
  for (const host of new Set(manifest.allowedConnections.filter((e) => e.kind === 'host').map((e) => e.value))) {
    try {
      resolved.set(host, [...new Set((await lookup(host, { all: true })).map((a) => a.address))].sort());
    } catch (err) {
      failed.set(host, (err as Error).message);
      resolved.set(host, []);
    }
  }
  return { resolved, failed };
}

/**
 * The first lookup of `render` and `apply`: a host name that does not resolve would silently narrow
 * the rules, so it is an error (GUARDIAN_E_FIREWALL_UNRESOLVED) unless --allow-unresolved accepts that.
 */
export async function resolveAtStart(manifest: Manifest, source: string, allowUnresolved: boolean, warn: (message: string) => void): Promise<Resolutions> {
  if (allowUnresolved) return resolveHosts(manifest, warn);
  const { resolved, failed } = await lookupHosts(manifest);
  if (failed.size > 0) {
    const names = [...failed].map(([host, reason]) => `${host} (${reason})`).join(', ');
    throw new GuardianError('GUARDIAN_E_FIREWALL_UNRESOLVED', `${source}: ${failed.size === 1 ? 'a host name does not resolve' : 'host names do not resolve'}: ${names}; ${failed.size === 1 ? 'its' : 'their'} rules would be missing`, { hosts: [...failed.keys()].join(' '), manifest: source });
  }
  return resolved;
}

function nft(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(systemBinary('nft'), ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', (err) => reject(new GuardianError('GUARDIAN_E_FIREWALL_APPLY', `cannot run nft: ${err.message}`, {}, { cause: err })));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new GuardianError('GUARDIAN_E_FIREWALL_APPLY', `nft -f failed (exit ${String(code)}): ${stderr.trim()}`))));
    child.stdin.end(script);
  });
}

export interface FirewallArgs {
  readonly manifest?: string | undefined;
  readonly nftables?: boolean | undefined;
  readonly systemd?: boolean | undefined;
  readonly user?: string | undefined;
  readonly cgroup?: string | undefined;
  readonly watch?: boolean | undefined;
  readonly interval?: string | undefined;
  readonly 'allow-unresolved'?: boolean | undefined;
}

function owner(args: FirewallArgs): { user?: string | number; cgroup?: string } {
  if (args.cgroup !== undefined) return { cgroup: args.cgroup };
  if (args.user !== undefined) return { user: /^\d+$/.test(args.user) ? Number(args.user) : args.user };
  return {};
}

type Out = (text: string) => void;

/** `guardian firewall render --nftables | --systemd` and `guardian firewall apply [--watch]` (options checked by the CLI's spec). */
export async function firewallCommand(sub: 'render' | 'apply', args: FirewallArgs, out: Out, warn: Out): Promise<number> {
  const source = args.manifest ?? DEFAULT_MANIFEST_PATH;
  const manifest = loadManifest(source);
  const conf = resolverConf();
  const resolved = await resolveAtStart(manifest, source, args['allow-unresolved'] === true, warn);
  if (sub === 'render') {
    out(args.nftables === true
      ? renderNftables(manifest, { ...owner(args), resolved, resolvers: conf.nameservers, search: conf.search, source })
      : renderSystemd(manifest, { resolved, resolvers: conf.nameservers, source, devices: TPM_DEVICES }));
    return 0;
  }
  await nft(renderNftables(manifest, { ...owner(args), resolved, resolvers: conf.nameservers, search: conf.search, source }));
  out(`loaded table inet guardian from ${source}\n`);
  if (args.watch === true) await watchHosts(manifest, resolved, conf.nameservers, Number(args.interval ?? '60'), out, warn);
  return 0;
}

/** A later lookup (`apply --watch`): a name that does not resolve now keeps the addresses it had (a DNS outage must not cut the link). */
async function refreshHosts(manifest: Manifest, previous: Resolutions, warn: Out): Promise<Map<string, string[]>> {
  const { resolved, failed } = await lookupHosts(manifest);
  for (const [host, reason] of failed) {
    const kept = previous.get(host) ?? [];
    resolved.set(host, [...kept]);
    warn(`${host} does not resolve (${reason}): keeping its previous addresses (${kept.join(' ') || 'none'})`);
  }
  return resolved;
}

/**
 * `apply --watch`: look the host names up again every `everyS` seconds and update the sets when they
 * moved (or the name servers did); a name that stops resolving keeps its previous addresses.
 */
async function watchHosts(manifest: Manifest, first: Resolutions, firstServers: string[], everyS: number, out: Out, warn: Out): Promise<void> {
  let resolved = first;
  let servers = firstServers;
  let stop = false;
  const stopped = new Promise<void>((resolve) => {
    const done = (): void => { stop = true; resolve(); };
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
  while (!stop) {
    await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, everyS * 1000))]);
    if (stop) break;
    const next = await refreshHosts(manifest, resolved, warn);
    const nextServers = resolvers();
    if (JSON.stringify([...next]) === JSON.stringify([...resolved]) && nextServers.join(' ') === servers.join(' ')) continue;
    try {
      await nft(renderDnsRefresh(manifest, next, nextServers));
      out(`dns sets updated: ${[...next].map(([h, a]) => `${h} = ${a.join(' ') || '(none)'}`).join('; ')}; name servers ${nextServers.join(' ') || '(none)'}\n`);
      resolved = next;
      servers = nextServers;
    } catch (err) {
      warn(`${(err as Error).message}; keeping the previous addresses`);
    }
  }
}
