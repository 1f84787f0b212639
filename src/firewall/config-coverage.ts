import { randomUUID } from 'node:crypto';
import type { GatewayConfig } from '../config/types.js';
import { ProblemListError } from '../core/problems.js';
import { loadManifest, type Manifest } from './manifest.js';
import { ConnectionPolicy } from './policy.js';

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

/**
 * What the config uses that the manifest does not allow, one `<config path>: …`
 * line each: Guardian refuses to start with such a pair (GUARDIAN_E_FIREWALL_CONFIG)
 * rather than have the guard refuse it at run time.
 */
export function configProblems(config: GatewayConfig, policy: ConnectionPolicy): string[] {
  return configEndpoints(config).flatMap((e) => {
    if (e.kind === 'serial') {
      return policy.allowsSerial(e.device) ? [] : [`${e.path}: serial device ${e.device} is not in the manifest's Capabilities.Uart`];
    }
    return policy.allowsConnect(e.host, e.port) ? [] : [`${e.path}: ${e.host}:${e.port} is not in the manifest's Capabilities.AllowedConnections`];
  });
}

/**
 * A manifest that allows exactly what the config uses, and writes to nothing
 * (`guardian firewall init`): a starting point to review, not a policy.
 */
export function manifestFor(config: GatewayConfig, extra: { tcpServerPorts?: readonly number[] } = {}): Record<string, unknown> {
  const endpoints = configEndpoints(config);
  const hostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
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

/** Load the config's manifest and check the config against it; throws ManifestError or FirewallConfigError. */
export function loadFirewall(config: GatewayConfig): { manifest: Manifest; policy: ConnectionPolicy } {
  const manifest = loadManifest(config.firewall.manifest);
  const policy = new ConnectionPolicy(manifest);
  const problems = configProblems(config, policy);
  if (problems.length > 0) throw new FirewallConfigError('GUARDIAN_E_FIREWALL_CONFIG', config.firewall.manifest, problems);
  return { manifest, policy };
}
