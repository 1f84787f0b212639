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
  const out = new Map<string, string[]>();
  for (const host of new Set(manifest.allowedConnections.filter((e) => e.kind === 'host').map((e) => e.value))) {
    try {
      out.set(host, [...new Set((await lookup(host, { all: true })).map((a) => a.address))].sort());
    } catch (err) {
      warn(`${host} does not resolve (${(err as Error).message}): no addresses for it until it does`);
      out.set(host, []);
    }
  }
  return out;
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
}

function owner(args: FirewallArgs): { user?: string | number; cgroup?: string } {
  if (args.cgroup !== undefined) return { cgroup: args.cgroup };
  if (args.user !== undefined) return { user: /^\d+$/.test(args.user) ? Number(args.user) : args.user };
  return {};
}

/** `guardian firewall render --nftables | --systemd` and `guardian firewall apply [--watch]`. */
export async function firewallCommand(sub: string | undefined, args: FirewallArgs, out: (text: string) => void, warn: (text: string) => void): Promise<number> {
  const source = args.manifest ?? DEFAULT_MANIFEST_PATH;
  const manifest = loadManifest(source);
  const conf = resolverConf();
  let servers = conf.nameservers;
  if (sub === 'render') {
    if (args.nftables === args.systemd) throw new GuardianError('GUARDIAN_E_USAGE', 'firewall render needs exactly one of --nftables and --systemd');
    const resolved = await resolveHosts(manifest, warn);
    out(args.nftables === true
      ? renderNftables(manifest, { ...owner(args), resolved, resolvers: servers, search: conf.search, source })
      : renderSystemd(manifest, { resolved, resolvers: servers, source, devices: TPM_DEVICES }));
    return 0;
  }
  if (sub === 'apply') {
    let resolved: Resolutions = await resolveHosts(manifest, warn);
    await nft(renderNftables(manifest, { ...owner(args), resolved, resolvers: servers, search: conf.search, source }));
    out(`loaded table inet guardian from ${source}\n`);
    if (args.watch !== true) return 0;
    const everyS = Number(args.interval ?? '60');
    if (!Number.isFinite(everyS) || everyS < 1) throw new GuardianError('GUARDIAN_E_USAGE', `--interval must be a number of seconds >= 1 (got '${String(args.interval)}')`);
    let stop = false;
    const stopped = new Promise<void>((resolve) => {
      const done = (): void => { stop = true; resolve(); };
      process.once('SIGTERM', done);
      process.once('SIGINT', done);
    });
    while (!stop) {
      await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, everyS * 1000))]);
      if (stop) break;
      const next = await resolveHosts(manifest, warn);
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
    return 0;
  }
  throw new GuardianError('GUARDIAN_E_USAGE', `unknown firewall command '${String(sub)}' (render, apply)`);
}
