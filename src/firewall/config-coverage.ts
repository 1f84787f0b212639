import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { GatewayConfig } from '../config/types.js';
import { ProblemListError } from '../core/problems.js';
import { suggestKey } from '../core/schema-errors.js';
import { loadManifest, ManifestError, type Manifest } from './manifest.js';
import { ConnectionPolicy } from './policy.js';
import { writeRuleWarnings } from './write-warnings.js';

/** The config uses what the manifest does not allow: one `<config path>: …` line each. */
export class FirewallConfigError extends ProblemListError<'GUARDIAN_E_FIREWALL_CONFIG'> {}

/** Something the config makes Guardian connect to or open, with the config path that asks for it. */
export type ConfigEndpoint =
  | { readonly kind: 'connect'; readonly path: string; readonly host: string; readonly port: number }
  | { readonly kind: 'serial'; readonly path: string; readonly device: string };

/** The broker's host and port from its URL (default ports: 1883 plain, 8883 TLS). */
export function brokerEndpoint(url: string): { host: string; port: number } {
  const u = new URL(url);
  const tls = ['mqtts:', 'tls:', 'ssl:'].includes(u.protocol);
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port === '' ? (tls ? 8883 : 1883) : Number(u.port) };
}

/** Every outbound endpoint and serial device the config uses. */
export function configEndpoints(config: GatewayConfig): ConfigEndpoint[] {
  const out: ConfigEndpoint[] = [{ kind: 'connect', path: 'upstream.mqtt.url', ...brokerEndpoint(config.upstream.mqtt.url) }];
  config.buses.forEach((bus, i) => {
    if (bus.type === 'rtu') out.push({ kind: 'serial', path: `buses[${i}].port`, device: bus.port });
    else out.push({ kind: 'connect', path: `buses[${i}]`, host: bus.host, port: bus.port });
  });
  return out;
}

/** An `AllowedConnections` entry for one host and port (an IPv6 address in brackets). */
function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * What the config uses that the manifest does not allow, one `<config path>: …`
 * line each: Guardian refuses to start with such a pair (GUARDIAN_E_FIREWALL_CONFIG)
 * rather than have the guard refuse it at run time.
 */
export function configProblems(config: GatewayConfig, policy: ConnectionPolicy): string[] {
  return configEndpoints(config).flatMap((e) => {
    if (e.kind === 'serial') {
      return policy.allowsSerial(e.device) ? [] : [`${e.path}: serial device ${e.device} is not in the manifest's Capabilities.Uart — add "${e.device}"`];
    }
    const entry = hostPort(e.host, e.port);
    return policy.allowsConnect(e.host, e.port) ? [] : [`${e.path}: ${entry} is not in the manifest's Capabilities.AllowedConnections — add "${entry}"`];
  });
}

/**
 * A manifest that allows exactly what the config uses, and writes to nothing
 * (`guardian firewall init`): a starting point to review, not a policy.
 */
export function manifestFor(config: GatewayConfig, extra: { tcpServerPorts?: readonly number[] } = {}): Record<string, unknown> {
  const endpoints = configEndpoints(config);
  const connections = [...new Set(endpoints.flatMap((e) => (e.kind === 'connect' ? [hostPort(e.host, e.port)] : [])))];
  const uarts = [...new Set(endpoints.flatMap((e) => (e.kind === 'serial' ? [e.device] : [])))];
  return {
    SchemaVersion: 1,
    Name: `guardian-${config.gateway.id}`,
    ComponentId: randomUUID(),
    Capabilities: {
      AllowedConnections: connections,
      ...(extra.tcpServerPorts === undefined || extra.tcpServerPorts.length === 0 ? {} : { AllowedTcpServerPorts: [...extra.tcpServerPorts] }),
      ...(uarts.length === 0 ? {} : { Uart: uarts }),
    },
    Guardian: { WritePolicy: { Devices: {} } },
  };
}

/**
 * What the manifest says that the config makes pointless, one `<manifest path>: …`
 * line each, to print as warnings: a write policy for a device the config does not
 * have (a typo there silently denies every write to the real device), write limits
 * that can never allow a write (src/firewall/write-warnings.ts), and what the
 * manifest itself warns about (a bare `Uart` name).
 */
export function configWarnings(config: GatewayConfig, manifest: Manifest): string[] {
  const names = config.buses.flatMap((b) => b.devices.map((d) => d.name));
  const shown = names.length === 0 ? 'the config has no devices' : `the config's devices: ${names.join(', ')}`;
  const unknown = [...manifest.writePolicy.keys()].filter((device) => !names.includes(device)).map((device) => {
    const hint = suggestKey(device, names);
    return `Guardian.WritePolicy.Devices.${device}: the config has no device '${device}'${hint === undefined ? '' : ` (did you mean '${hint}'?)`}; this policy allows nothing (${shown})`;
  });
  const limits = config.buses.flatMap((b) => b.devices).flatMap((d) => {
    const policy = manifest.writePolicy.get(d.name);
    return policy === undefined ? [] : writeRuleWarnings(d, policy);
  });
  return [...manifest.warnings, ...unknown, ...limits];
}

/** Why the manifest file is not there, and how to make one; the config file is named in the command shown. */
function missingManifest(config: GatewayConfig, configFile: string | undefined): ManifestError {
  const file = config.firewall.manifest;
  return new ManifestError('GUARDIAN_E_MANIFEST_READ', file, [
    `firewall.manifest: ${file}: no such file; Guardian expects its manifest there (the config's firewall.manifest).`
    + ` Make one with \`guardian firewall init --config ${configFile ?? 'FILE'} > ${file}\`, then review it`,
  ]);
}

/**
 * Load the config's manifest and check the config against it; throws ManifestError
 * (a missing file says how to make one) or FirewallConfigError.
 */
export function loadFirewall(config: GatewayConfig, configFile?: string): { manifest: Manifest; policy: ConnectionPolicy } {
  if (!existsSync(config.firewall.manifest)) throw missingManifest(config, configFile);
  const manifest = loadManifest(config.firewall.manifest);
  const policy = new ConnectionPolicy(manifest);
  const problems = configProblems(config, policy);
  if (problems.length > 0) throw new FirewallConfigError('GUARDIAN_E_FIREWALL_CONFIG', config.firewall.manifest, problems);
  return { manifest, policy };
}
