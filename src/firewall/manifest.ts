import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { Ajv } from 'ajv';
import { parseDocument } from 'yaml';
import { parseJsonText, withoutBom } from '../core/json-text.js';
import { ProblemListError } from '../core/problems.js';
import { nonFinite, nonFinitePaths } from '../core/shown.js';
import { readTextFile } from '../core/text-file.js';
import { duplicateKeyProblems } from '../core/yaml-text.js';
import { deepFreeze } from '../core/freeze.js';
import { absoluteDevicePath } from '../core/serial-path.js';
import { formatSchemaError, joinPath } from '../core/schema-errors.js';
import { canonicalIp, expandV6, maskAddress } from './ip.js';

export const MANIFEST_SCHEMA_URL = new URL('../../config/app_manifest.schema.json', import.meta.url);
export const DEFAULT_MANIFEST_PATH = '/etc/guardian/app_manifest.json';

/** One `AllowedConnections` entry: a host name (only as named), an IP address, or a CIDR block; optionally one port. */
export interface Endpoint {
  readonly kind: 'host' | 'ip' | 'cidr';
  /** Lower-case host name, or the address (of the block). */
  readonly value: string;
  readonly family?: 4 | 6;
  readonly prefix?: number;
  /** Only this port when set; any port when absent (as Azure Sphere). */
  readonly port?: number;
  /** The entry as written. */
  readonly source: string;
}

export interface WriteRule {
  readonly table: 'coil' | 'holding';
  readonly from: number;
  readonly to: number;
  readonly min?: number;
  readonly max?: number;
  /** Read the written range back and compare (default); false for self-clearing command registers. */
  readonly verify: boolean;
}

export interface DeviceWritePolicy {
  readonly allow: readonly WriteRule[];
  readonly maxWritesPerMinute?: number;
}

export interface Manifest {
  readonly name: string;
  readonly componentId: string;
  readonly allowedConnections: readonly Endpoint[];
  readonly tcpServerPorts: readonly number[];
  readonly udpServerPorts: readonly number[];
  /** Serial devices that may be opened (the absolute-path entries of `Uart`; symlinks are resolved when compared). */
  readonly uarts: readonly string[];
  /** Azure Sphere capabilities and entries that mean nothing on Linux: accepted, logged once. */
  readonly ignored: readonly string[];
  /** What is allowed but probably not meant (a bare `Uart` name), one `<path>: …` line each: printed as warnings. */
  readonly warnings: readonly string[];
  /** Per device; a device that is not here may not be written at all. */
  readonly writePolicy: ReadonlyMap<string, DeviceWritePolicy>;
}

/** Every problem of a manifest, one `<path>: <problem>` line each (the config's error style). */
export class ManifestError extends ProblemListError<'GUARDIAN_E_MANIFEST_READ' | 'GUARDIAN_E_MANIFEST_PARSE' | 'GUARDIAN_E_MANIFEST_INVALID'> {}

type Rec = Record<string, unknown>;
const USED = new Set(['AllowedConnections', 'AllowedTcpServerPorts', 'AllowedUdpServerPorts', 'Uart']);

let validator: ReturnType<Ajv['compile']> | undefined;
function schemaProblems(doc: unknown): string[] {
  if (validator === undefined) {
    const schema = JSON.parse(readFileSync(MANIFEST_SCHEMA_URL, 'utf8')) as Rec;
    validator = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true }).compile(schema);
  }
  validator(doc) as boolean; // a synchronous schema: errors are on the validator
  // a bad property name is reported by its own rule's error; ajv's summary of it ('property name must be valid') says nothing more
  return (validator.errors ?? []).filter((e) => e.keyword !== 'propertyNames').map(formatSchemaError);
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Parse one `AllowedConnections` entry, or say what is wrong with it. */
export function parseEndpoint(source: string): Endpoint | string {
  let rest = source.trim();
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracketed !== null) {
    rest = bracketed[1] ?? '';
    if (isIP(rest) !== 6) return `'${source}' is not an IPv6 address in brackets`;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const [host = '', p = ''] = rest.split(':');
    if (!/^\d+$/.test(p)) return `'${source}' has a bad port '${p}' (a number 1-65535 after ':')`;
    rest = host;
    port = Number(p);
  }
  if (port !== undefined && (port < 1 || port > 65535)) return `'${source}' has a bad port ${port} (1-65535)`;
  const withPort = port === undefined ? {} : { port };
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const address = rest.slice(0, slash);
    const bits = rest.slice(slash + 1);
    const family = isIP(address) as 0 | 4 | 6;
    if (family === 0) return `'${source}' is not a CIDR block (an IP address, '/', a prefix length)`;
    const max = family === 4 ? 32 : 128;
    if (!/^\d+$/.test(bits) || Number(bits) > max) return `'${source}' has a bad prefix length '${bits}' (0-${max})`;
    const prefix = Number(bits);
    const network = maskAddress(address, family, prefix);
    if (network !== address.toLowerCase() && network !== expandV6(address)) return `'${source}' has host bits set (did you mean '${network}/${prefix}'?)`;
    return { kind: 'cidr', value: network, family, prefix, source, ...withPort };
  }
  const ip = canonicalIp(rest);
  if (ip !== undefined) return { kind: 'ip', value: ip.address, family: ip.family, source, ...withPort };
  const host = rest.toLowerCase().replace(/\.$/, '');
  if (host.includes('*')) return `'${source}': wildcards are not allowed; list each host name`;
  if (host.length === 0 || host.length > 253 || !host.split('.').every((l) => LABEL.test(l))) {
    return `'${source}' is not a host name, IP address or CIDR block`;
  }
  if (/^[0-9.]+$/.test(host)) return `'${source}' is not a valid IPv4 address`;
  return { kind: 'host', value: host, source, ...withPort };
}

function endpointKey(e: Endpoint): string {
  return `${e.kind}:${e.value}/${e.prefix ?? ''}:${e.port ?? '*'}`;
}

/** The JSON of the manifest (a byte order mark skipped); a syntax error says where (line, column), on one line. */
function parseJson(text: string, source: string): unknown {
  if (text.trim() === '') throw new ManifestError('GUARDIAN_E_MANIFEST_PARSE', source, ['(root): the file is empty: start from `guardian firewall init`']);
  const parsed = parseJsonText(text);
  if (!parsed.ok) throw new ManifestError('GUARDIAN_E_MANIFEST_PARSE', source, [parsed.problem]);
  return parsed.value;
}

/** Top-level keys and capabilities Guardian does not use. */
function ignoredKeys(m: Rec, caps: Rec): string[] {
  return [
    ...Object.keys(m).filter((k) => !['SchemaVersion', 'Name', 'ComponentId', 'Capabilities', 'Guardian', 'Description'].includes(k)),
    ...Object.keys(caps).filter((k) => !USED.has(k)).map((k) => `Capabilities.${k}`),
  ];
}

function allowedConnections(caps: Rec, problems: string[]): Endpoint[] {
  const endpoints: Endpoint[] = [];
  const seen = new Map<string, number>();
  ((caps['AllowedConnections'] ?? []) as string[]).forEach((entry, i) => {
    const path = `Capabilities.AllowedConnections[${i}]`;
    const parsed = parseEndpoint(entry);
    if (typeof parsed === 'string') { problems.push(`${path}: ${parsed}`); return; }
    const first = seen.get(endpointKey(parsed));
    if (first !== undefined) { problems.push(`${path}: duplicate of [${first}] ('${parsed.source}')`); return; }
    seen.set(endpointKey(parsed), i);
    endpoints.push(parsed);
  });
  return endpoints;
}

function serverPorts(caps: Rec, key: string, problems: string[]): number[] {
  const list = (caps[key] ?? []) as number[];
  list.forEach((port, i) => {
    if (port < 1 || port > 65535) problems.push(`Capabilities.${key}[${i}]: must be a port 1-65535 (got ${port})`);
    const first = list.indexOf(port);
    if (first < i) problems.push(`Capabilities.${key}[${i}]: duplicate of [${first}] (${port})`);
  });
  return [...new Set(list)];
}

/**
 * The absolute device paths of `Uart`; an Azure Sphere peripheral name goes to
 * `ignored`, with a warning (`ttyUSB0` was most likely meant as /dev/ttyUSB0).
 */
function uartPaths(caps: Rec, problems: string[], ignored: string[], warnings: string[]): string[] {
  const uarts: string[] = [];
  ((caps['Uart'] ?? []) as string[]).forEach((entry, i) => {
    const path = `Capabilities.Uart[${i}]`;
    if (!entry.startsWith('/')) {
      ignored.push(`${path} '${entry}' (an Azure Sphere peripheral name)`);
      warnings.push(`${path}: '${entry}' is read as an Azure Sphere peripheral name and allows no serial device on Linux; for a Linux serial device write "${absoluteDevicePath(entry)}" (or its /dev/serial/by-id/… path) instead`);
      return;
    }
    if (posix.normalize(entry) !== entry || entry.endsWith('/')) problems.push(`${path}: must be a plain absolute device path like /dev/ttyUSB0 (got '${entry}')`);
    else if (uarts.includes(entry)) problems.push(`${path}: duplicate of [${uarts.indexOf(entry)}] ('${entry}')`);
    else uarts.push(entry);
  });
  return uarts;
}

function writePolicies(m: Rec, yamlDoc: ReturnType<typeof parseDocument>, text: string, problems: string[]): Map<string, DeviceWritePolicy> {
  const writePolicy = new Map<string, DeviceWritePolicy>();
  const devices = (((m['Guardian'] as Rec | undefined)?.['WritePolicy'] as Rec | undefined)?.['Devices'] ?? {}) as Record<string, Rec>;
  for (const [device, spec] of Object.entries(devices)) {
    const base = `Guardian.WritePolicy.Devices.${device}`;
    const allow = (spec['Allow'] as Rec[]).map((rule, i) => writeRule(rule, joinPath(`${base}.Allow`, i), problems));
    const where = (i: number): string => `${joinPath(`${base}.Allow`, i)} (line ${lineOf(yamlDoc, text, ['Guardian', 'WritePolicy', 'Devices', device, 'Allow', i])})`;
    problems.push(...overlaps(allow, where));
    const rate = spec['MaxWritesPerMinute'] as number | undefined;
    writePolicy.set(device, { allow: allow.filter((r): r is WriteRule => r !== undefined), ...(rate === undefined ? {} : { maxWritesPerMinute: rate }) });
  }
  return writePolicy;
}

/** Parse and validate manifest text; throws ManifestError with every problem. */
export function parseManifest(raw: string, source = '<manifest>'): Manifest {
  const text = withoutBom(raw);
  const doc = parseJson(text, source);
  // JSON.parse keeps the last of duplicate keys without a word; the YAML parser (JSON is YAML 1.2) says where
  const yamlDoc = parseDocument(text, { uniqueKeys: false });
  const duplicates = duplicateKeyProblems(yamlDoc, text);
  if (duplicates.length > 0) throw new ManifestError('GUARDIAN_E_MANIFEST_PARSE', source, duplicates);
  const infinite = nonFinitePaths(doc);
  if (infinite.length > 0) throw new ManifestError('GUARDIAN_E_MANIFEST_INVALID', source, infinite.map((n) => `${n.path}: must be a finite number (got ${nonFinite(n.value)})`));
  const problems = schemaProblems(doc);
  if (problems.length > 0) throw new ManifestError('GUARDIAN_E_MANIFEST_INVALID', source, problems);
  const m = doc as Rec;
  const caps = m['Capabilities'] as Rec;
  const ignored = ignoredKeys(m, caps);
  const connections = allowedConnections(caps, problems);
  const tcpServerPorts = serverPorts(caps, 'AllowedTcpServerPorts', problems);
  const udpServerPorts = serverPorts(caps, 'AllowedUdpServerPorts', problems);
  const warnings: string[] = [];
  const uarts = uartPaths(caps, problems, ignored, warnings);
  const writePolicy = writePolicies(m, yamlDoc, text, problems);
  if (problems.length > 0) throw new ManifestError('GUARDIAN_E_MANIFEST_INVALID', source, problems);
  return deepFreeze({
    name: m['Name'] as string, componentId: (m['ComponentId'] as string).toLowerCase(),
    allowedConnections: connections, tcpServerPorts, udpServerPorts, uarts, ignored, warnings, writePolicy,
  });
}

/** The 1-based line where the node at `path` starts ('?' when the parser cannot say). */
function lineOf(doc: ReturnType<typeof parseDocument>, text: string, path: readonly (string | number)[]): number | string {
  const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
  const start = node?.range?.[0];
  return start === undefined ? '?' : text.slice(0, start).split('\n').length;
}

/**
 * Rules of one device must not overlap: with overlapping rules, which one judges a
 * write (and whose limits apply) would depend on their order, and a broad rule
 * without limits would silently shadow a narrow one with limits.
 */
function overlaps(rules: readonly (WriteRule | undefined)[], where: (i: number) => string): string[] {
  const problems: string[] = [];
  rules.forEach((rule, i) => {
    if (rule === undefined) return;
    const first = rules.findIndex((other, j) => j < i && other !== undefined && other.table === rule.table && other.from <= rule.to && rule.from <= other.to);
    const other = rules[first];
    if (other === undefined) return;
    const range = (r: WriteRule): string => (r.from === r.to ? `${r.from}` : `[${r.from}, ${r.to}]`);
    problems.push(`${where(i)}: ${rule.table} ${range(rule)} overlaps ${where(first)} ${rule.table} ${range(other)}; rules may not overlap (a write is judged by every rule it touches: split the ranges so each address has one rule)`);
  });
  return problems;
}

function writeRule(rule: Rec, path: string, problems: string[]): WriteRule | undefined {
  const table = rule['Table'] as 'coil' | 'holding';
  const addresses = rule['Addresses'] as number | number[];
  const [from, to] = typeof addresses === 'number' ? [addresses, addresses] : addresses;
  const before = problems.length;
  const valid = (a: unknown): a is number => Number.isInteger(a) && (a as number) >= 0 && (a as number) <= 65535;
  if (typeof addresses !== 'number' && addresses.length !== 2) problems.push(`${path}.Addresses: must be one address or [first, last] (got ${JSON.stringify(addresses)})`);
  else if (!valid(from) || !valid(to)) problems.push(`${path}.Addresses: addresses are integers 0-65535 (got ${JSON.stringify(addresses)})`);
  else if (from > to) problems.push(`${path}.Addresses: first ${from} is after last ${to}`);
  const min = rule['Min'] as number | undefined;
  const max = rule['Max'] as number | undefined;
  if (table === 'coil' && (min !== undefined || max !== undefined)) problems.push(`${path}: Min/Max do not apply to coils (they are on or off)`);
  if (min !== undefined && max !== undefined && min > max) problems.push(`${path}: Min ${min} is above Max ${max}`);
  if (problems.length > before || from === undefined || to === undefined) return undefined;
  return { table, from, to, ...(min === undefined ? {} : { min }), ...(max === undefined ? {} : { max }), verify: rule['Verify'] !== false };
}

/** Read and parse the manifest file: a regular file of at most 1 MiB. */
export function loadManifest(path: string): Manifest {
  const read = readTextFile(path);
  if (!read.ok) throw new ManifestError('GUARDIAN_E_MANIFEST_READ', path, [`(root): cannot read the file: ${read.problem}`]);
  return parseManifest(read.text, path);
}
