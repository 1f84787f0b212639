import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import type {
  BackoffConfig, BusConfig, DeviceConfig, GatewayConfig, MqttConfig, PointConfig,
} from './types.js';
import { deepFreeze } from '../core/freeze.js';
import { GuardianError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { nonFinite, nonFinitePaths } from '../core/shown.js';
import { readTextFile } from '../core/text-file.js';
import { ConfigError } from './error.js';
import { formatSchemaError, pointerToPath } from '../core/schema-errors.js';
import { semanticErrors } from './semantic.js';
import { formatOf, readConfigText, type ConfigFormat } from './source.js';

export const SCHEMA_URL = new URL('../../config/guardian.schema.json', import.meta.url);

type Rec = Record<string, unknown>;

let validator: ReturnType<Ajv['compile']> | undefined;
function validate(doc: unknown): ReturnType<Ajv['compile']> {
  if (validator === undefined) {
    const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Rec;
    const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true, allowUnionTypes: true });
    validator = ajv.compile(schema);
  }
  validator(doc) as boolean; // a synchronous schema: the result is a boolean, errors are on the validator
  return validator;
}

/** Config migrations: `migrations[n]` turns a version-n document into version n+1. */
const migrations: Record<number, (doc: Rec) => Rec> = {};

function migrate(doc: unknown): unknown {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return doc;
  let current = doc as Rec;
  for (let step = migrations[Number(current['version'])]; step !== undefined; step = migrations[Number(current['version'])]) {
    current = step(current);
  }
  return current;
}

/** `line L, column C: …` problems in file order, the ones without a line first. */
function byPosition(problems: readonly string[]): string[] {
  const key = (p: string): [number, number] => {
    const m = /^line (\d+), column (\d+): /.exec(p);
    return m === null ? [0, 0] : [Number(m[1]), Number(m[2])];
  };
  return [...problems].map((p, i) => ({ p, i, k: key(p) }))
    .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.i - b.i).map((x) => x.p);
}

/**
 * Parse and validate config text: JSON when `format` (by default: `source`
 * ends in `.json`) says so, else YAML. Throws GUARDIAN_E_CONFIG_PARSE or
 * GUARDIAN_E_CONFIG_INVALID with every problem in `err.problems`, each
 * `line L, column C: <path>: <problem>` where the path is in the file.
 */
export function parseConfig(text: string, source = '<config>', format: ConfigFormat = formatOf(source)): GatewayConfig {
  const { data, locate } = readConfigText(text, source, format);
  const doc = migrate(data);
  // a number that is not finite (.inf, .nan, 1e400) is one problem, not the schema's and the rules' follow-ons about it
  const infinite = nonFinitePaths(doc);
  const about = (p: string): boolean => infinite.some((n) => p.startsWith(`${n.path}: `));
  const semanticAll = semanticErrors(doc).filter((p) => !about(p)); // before ajv fills in defaults: these rules look at what the user wrote
  const check = validate(doc);
  // a value of the wrong type has that one problem: the rules' follow-ons about it (`url: 5` → "has no scheme") are noise
  const mistyped = (check.errors ?? []).filter((e) => e.keyword === 'type').map((e) => `${pointerToPath(e.instancePath)}: `);
  const semantic = semanticAll.filter((p) => !mistyped.some((m) => p.startsWith(m)));
  // a schema problem quotes the value it is about: never a URL's password (semantic.ts redacts its own)
  const schemaProblems = (check.errors ?? []).map((e) => formatSchemaError(typeof e.data === 'string' ? { ...e, data: redactUrl(e.data) } : e)).filter((p) => !about(p));
  const finite = infinite.map((n) => `${n.path}: must be a finite number (got ${nonFinite(n.value)})`);
  const problems = [...new Set([...finite, ...schemaProblems, ...semantic])].map(locate);
  if (problems.length > 0) throw new ConfigError('GUARDIAN_E_CONFIG_INVALID', source, byPosition(problems));
  return deepFreeze(normalize(doc as Rec));
}

export { ConfigError };

/** Read and parse the config file: a regular file of at most 1 MiB (never /dev/zero, a FIFO, a directory). */
export function loadConfig(path: string): GatewayConfig {
  const read = readTextFile(path);
  if (!read.ok) throw new GuardianError('GUARDIAN_E_CONFIG_READ', `cannot read config ${path}: ${read.problem}`, { path }, { cause: read.cause });
  return parseConfig(read.text, path);
}

const backoff = (raw: unknown, initialMs: number, maxMs: number): BackoffConfig => ({ initialMs, maxMs, ...(raw as Partial<BackoffConfig> | undefined) });

/** Fill the defaults the schema cannot express (inherited orders, nested objects). */
function normalize(doc: Rec): GatewayConfig {
  const mqttRaw = (doc['upstream'] as Rec)['mqtt'] as Rec;
  const mqtt = {
    ...mqttRaw,
    reconnect: backoff(mqttRaw['reconnect'], 500, 30000),
    queue: { maxInFlight: 100, ...(mqttRaw['queue'] as Rec | undefined) },
  } as unknown as MqttConfig;
  const buses = (doc['buses'] as Rec[]).map((bus): BusConfig => {
    const devices = (bus['devices'] as Rec[]).map((d): DeviceConfig => {
      const byteOrder = (d['byteOrder'] as string | undefined) ?? 'big';
      const wordOrder = (d['wordOrder'] as string | undefined) ?? 'big';
      const points = (d['points'] as Rec[]).map((p) => ({ byteOrder, wordOrder, ...p }) as unknown as PointConfig);
      return { ...d, byteOrder, wordOrder, backoff: backoff(d['backoff'], 1000, 60000), points } as unknown as DeviceConfig;
    });
    const base = { interRequestDelayMs: 0, ...bus, reconnect: backoff(bus['reconnect'], 500, 30000), devices };
    return (bus['type'] === 'rtu'
      ? { baudRate: 9600, parity: 'none', dataBits: 8, stopBits: 1, ...base }
      : { port: 502, ...base }) as unknown as BusConfig;
  });
  const outbox = { store: 'sqlite', maxBytes: 268435456, maxAgeMs: 604800000, maxMessages: 10000, commitIntervalMs: 0, synchronous: 'normal', drainRatePerS: 0, policy: 'drop-oldest', ...(doc['outbox'] as Rec | undefined) };
  const health = { intervalMs: 60000, ...(doc['health'] as Rec | undefined) };
  const firewall = { manifest: '/etc/guardian/app_manifest.json', ...(doc['firewall'] as Rec | undefined) };
  const stateDir = (doc['gateway'] as Rec)['stateDir'] as string;
  const identityRaw = (doc['identity'] as Rec | undefined) ?? {};
  const identity = {
    backend: 'auto', attestPcrs: 'sha256:0,1,2,3,4,5,6,7', ...identityRaw,
    dir: path.join(stateDir, 'identity'),
    tpm: { tcti: 'device:/dev/tpmrm0', ownerAuthFile: '/etc/guardian/tpm-owner.auth', handleBase: 0x81000a00, ...(identityRaw['tpm'] as Rec | undefined) },
    plutonSim: { secretFile: path.join(stateDir, 'identity', 'device.secret'), ...(identityRaw['plutonSim'] as Rec | undefined) },
  };
  return { ...doc, outbox, health, firewall, identity, upstream: { mqtt }, buses } as unknown as GatewayConfig;
}
