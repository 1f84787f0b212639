/**
 * Rules JSON Schema cannot express well (cross-field and uniqueness rules). They
 * run on the raw document next to the schema so every problem is reported at
 * once; each check guards its own shape, since the schema may have failed too.
 */
import { shownText } from '../core/shown.js';
import { hasUserinfo, redactUrl } from '../core/redact.js';
import { parseBrokerUrl, placeholderIn, placeholderProblem } from '../core/endpoint.js';
import { joinPath } from '../core/schema-errors.js';
import { interFrameSilenceMs, type SerialFraming } from '../core/serial-timing.js';
import {
  filePathProblem, modbusHostProblem, serialDevice, serialPortProblem, servernameProblem, topicPrefixProblem,
} from './semantic-values.js';

type Rec = Record<string, unknown>;
/** How a raw value reads in a message. */
const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'undefined');
const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

const REGISTERS: Record<string, number> = {
  bool: 1, bit: 1, int16: 1, uint16: 1, int32: 2, uint32: 2, float32: 2, int64: 4, uint64: 4, float64: 4,
};
const NUMERIC = new Set(['int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64']);
/** The schema's baudRate enum (a test keeps the two equal): the t3.5 rule only runs on a rate the schema accepts. */
export const BAUD_RATES: ReadonlySet<number> = new Set([300, 600, 1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400]);

/** Registers (register tables) or bits (coil, discrete: 1) a raw point spans, as the planner counts them. */
function pointWidth(p: Rec): number {
  if (p['table'] === 'coil' || p['table'] === 'discrete') return 1;
  if (p['type'] === 'string') return typeof p['length'] === 'number' ? p['length'] : 1;
  return REGISTERS[String(p['type'])] ?? 1;
}

/** A string value that names a file the service opens (the schema reports other types). */
function checkFilePath(value: unknown, path: string, out: string[]): void {
  if (typeof value !== 'string') return;
  const problem = filePathProblem(value);
  if (problem !== undefined) out.push(`${path}: ${problem}`);
}

function checkBackoff(b: unknown, path: string, out: string[]): void {
  if (isRec(b) && typeof b['initialMs'] === 'number' && typeof b['maxMs'] === 'number' && b['initialMs'] > b['maxMs']) {
    out.push(`${joinPath(path, 'initialMs')}: must not exceed maxMs (${b['maxMs']})`);
  }
}

const NO_CREDENTIALS = 'credentials never live in URLs (they end up in logs, shell history and backups)';

/** The broker URL: no user name or password, no query or fragment to smuggle them in. */
function checkBrokerUrl(url: string, path: string, out: string[]): void {
  if (hasUserinfo(url)) {
    out.push(`${path}: must not contain a user name or password ('user:pass@'): ${NO_CREDENTIALS}; use upstream.mqtt.username with upstream.mqtt.sas, or a client certificate (upstream.mqtt.tls) (got ${shownText(redactUrl(url))})`);
  }
  else if (/^[^?#]*:\/\/[^?#]*[?#]/.test(url)) out.push(`${path}: must not have a query or fragment ('?…', '#…'): ${NO_CREDENTIALS}`);
  else if (placeholderIn(url) === undefined) { // a placeholder is reported by checkPlaceholders
    const parsed = parseBrokerUrl(url);
    if (!parsed.ok) out.push(`${path}: ${parsed.problem} (got ${shownText(redactUrl(url))})`);
  }
}

/** A host name or `host/path` with no scheme (IoT Hub resource, Modbus TCP host): no '@' before the path. */
function checkNoUserinfo(value: unknown, path: string, out: string[]): void {
  if (typeof value === 'string' && (value.split('/')[0] ?? '').includes('@')) {
    out.push(`${path}: must not contain a user name or password ('user:pass@'): ${NO_CREDENTIALS}`);
  }
}

/** A Modbus TCP host: a host name or an IP literal, no credentials (a placeholder is reported by checkPlaceholders). */
function checkHost(value: unknown, path: string, out: string[]): void {
  if (typeof value !== 'string' || value === '' || placeholderIn(value) !== undefined) return;
  if ((value.split('/')[0] ?? '').includes('@')) {
    checkNoUserinfo(value, path, out);
    return;
  }
  const problem = modbusHostProblem(value);
  if (problem !== undefined) out.push(`${path}: ${problem}`);
}

/** Every string with a `${…}` in it: Guardian reads its config as written. */
function checkPlaceholders(value: unknown, path: string, out: string[]): void {
  if (typeof value === 'string') {
    const placeholder = placeholderIn(value);
    if (placeholder !== undefined) out.push(`${path}: ${placeholderProblem(placeholder)}`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => { checkPlaceholders(v, joinPath(path, i), out); });
  } else if (isRec(value)) {
    for (const [k, v] of Object.entries(value)) checkPlaceholders(v, joinPath(path, k), out);
  }
}

/** The TLS files (absolute paths) and the server name. */
function checkTls(tls: Rec, path: string, out: string[]): void {
  for (const key of ['ca', 'cert', 'key']) checkFilePath(tls[key], joinPath(path, key), out);
  const name = tls['servername'];
  const problem = typeof name === 'string' && name !== '' ? servernameProblem(name) : undefined;
  if (problem !== undefined) out.push(`${joinPath(path, 'servername')}: ${problem}`);
}

function checkMqtt(m: unknown, path: string, out: string[]): void {
  if (!isRec(m)) return;
  const url = typeof m['url'] === 'string' ? m['url'] : '';
  checkBrokerUrl(url, joinPath(path, 'url'), out);
  const secure = /^(mqtts|tls|ssl):/.test(url);
  const tls = m['tls'];
  if (secure && !isRec(tls)) out.push(`${joinPath(path, 'tls')}: is required for ${url.split(':')[0] ?? ''}:// (the broker CA is pinned)`);
  if (!secure && isRec(tls) && url !== '') out.push(`${joinPath(path, 'tls')}: needs an mqtts:// url (got ${shownText(redactUrl(url))})`);
  if (isRec(tls) && tls['identity'] === true && ('cert' in tls || 'key' in tls)) {
    out.push(`${joinPath(path, 'tls')}: identity: true takes the key from the key store; remove cert and key`);
  } else if (isRec(tls) && ('cert' in tls) !== ('key' in tls)) {
    out.push(`${joinPath(path, 'tls')}: cert and key must be given together`);
  }
  if (isRec(tls)) checkTls(tls, joinPath(path, 'tls'), out);
  const prefix = m['topicPrefix'];
  const prefixProblem = typeof prefix === 'string' ? topicPrefixProblem(prefix) : undefined;
  if (prefixProblem !== undefined) out.push(`${joinPath(path, 'topicPrefix')}: ${prefixProblem}`);
  const sas = m['sas'];
  if (isRec(sas) && m['username'] === undefined) {
    out.push(`${joinPath(path, 'username')}: is required with sas: the SAS token is the MQTT password, and MQTT sends no password without a user name; for Azure IoT Hub write '<hub>.azure-devices.net/<deviceId>/?api-version=2021-04-12'`);
  }
  if (isRec(sas)) checkNoUserinfo(sas['resourceUri'], joinPath(joinPath(path, 'sas'), 'resourceUri'), out);
  if (isRec(sas)) {
    const ttl = typeof sas['ttlS'] === 'number' ? sas['ttlS'] : 3600; // the schema's defaults
    const renew = typeof sas['renewBeforeS'] === 'number' ? sas['renewBeforeS'] : 300;
    if (renew >= ttl) out.push(`${joinPath(joinPath(path, 'sas'), 'renewBeforeS')}: must be less than ttlS (${ttl}), or every token would be renewed at once`);
  }
  checkBackoff(m['reconnect'], joinPath(path, 'reconnect'), out);
}

function checkPoint(p: Rec, path: string, out: string[]): void {
  const { table, type } = p;
  const isBitTable = table === 'coil' || table === 'discrete';
  if (isBitTable && type !== undefined && type !== 'bool') {
    out.push(`${joinPath(path, 'type')}: must be 'bool' for table '${String(table)}' (got ${shownText(show(type))})`);
  }
  if (type === 'bit' && !('bit' in p)) out.push(`${joinPath(path, 'bit')}: is required for type 'bit'`);
  if (type !== 'bit' && 'bit' in p) out.push(`${joinPath(path, 'bit')}: only applies to type 'bit'`);
  if (type === 'string' && !('length' in p)) out.push(`${joinPath(path, 'length')}: is required for type 'string' (registers)`);
  if (type !== 'string' && 'length' in p) out.push(`${joinPath(path, 'length')}: only applies to type 'string'`);
  const numeric = typeof type === 'string' && NUMERIC.has(type);
  if (!numeric) {
    for (const key of ['scale', 'offset', 'deadband'] as const) {
      if (key in p) out.push(`${joinPath(path, key)}: only applies to numeric types (got type '${String(type)}')`);
    }
  }
  if (p['scale'] === 0) out.push(`${joinPath(path, 'scale')}: must not be 0`);
  if ('heartbeatMs' in p && p['reportOnChange'] !== true) {
    out.push(`${joinPath(path, 'heartbeatMs')}: only applies with reportOnChange: true`);
  }
  if (typeof p['deadband'] === 'number' && p['deadband'] > 0 && p['reportOnChange'] !== true) {
    out.push(`${joinPath(path, 'deadband')}: only applies with reportOnChange: true`);
  }
  const span = pointWidth(p);
  if (typeof p['address'] === 'number' && p['address'] + span - 1 > 65535) {
    out.push(`${joinPath(path, 'address')}: point spans ${span} registers and runs past 65535`);
  }
}

/** The line's framing as written, with the loader's defaults; undefined when the schema will reject it anyway. */
function framingOf(bus: Rec): SerialFraming | undefined {
  const framing = { baudRate: 9600, parity: 'none', dataBits: 8, stopBits: 1, ...bus };
  const { baudRate, parity, dataBits, stopBits } = framing;
  if (typeof baudRate !== 'number' || !BAUD_RATES.has(baudRate) || (parity !== 'none' && parity !== 'even' && parity !== 'odd')
    || (dataBits !== 7 && dataBits !== 8) || (stopBits !== 1 && stopBits !== 2)) return undefined;
  return { baudRate, parity, dataBits, stopBits };
}

/** Every request on a serial line waits t3.5 after the last frame: a response timeout must outlast it. */
function checkTimeout(d: Rec, framing: SerialFraming | undefined, path: string, out: string[]): void {
  if (framing === undefined || typeof d['timeoutMs'] !== 'number') return;
  const t35 = interFrameSilenceMs(framing);
  if (d['timeoutMs'] <= t35) {
    out.push(`${joinPath(path, 'timeoutMs')}: must be longer than the line's inter-frame silence t3.5 (${t35.toFixed(3)} ms at ${framing.baudRate} baud), which every request waits first`);
  }
}

/** One request reads a point whole: maxRegistersPerRequest must hold the widest register point. */
function checkRequestSize(d: Rec, path: string, out: string[]): void {
  const max = d['maxRegistersPerRequest'];
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1) return; // the schema reports it
  const widest = list(d['points']).filter(isRec).filter((p) => p['table'] === 'input' || p['table'] === 'holding')
    .reduce<Rec | undefined>((w, p) => (w === undefined || pointWidth(p) > pointWidth(w) ? p : w), undefined);
  if (widest !== undefined && pointWidth(widest) > max) {
    out.push(`${joinPath(path, 'maxRegistersPerRequest')}: must be at least ${pointWidth(widest)}: point '${show(widest['name'])}' (${show(widest['type'])}) spans ${pointWidth(widest)} registers and one request reads a point whole (got ${max})`);
  }
}

/** Two rtu buses on one serial line would fight over it (the second cannot lock the port). */
function checkSerialPorts(buses: readonly unknown[], out: string[]): void {
  const seen = new Map<string, number>();
  buses.forEach((bus, bi) => {
    if (!isRec(bus) || bus['type'] !== 'rtu' || typeof bus['port'] !== 'string' || serialPortProblem(bus['port']) !== undefined || bus['port'] === '') return;
    const device = serialDevice(bus['port']);
    const first = seen.get(device);
    if (first === undefined) {
      seen.set(device, bi);
      return;
    }
    const same = device === bus['port'] ? `'${bus['port']}'` : `'${bus['port']}' (${device})`;
    out.push(`buses[${bi}].port: ${same} is also the port of buses[${first}]: one serial line is one bus; put the devices of both on one bus (unit ids tell them apart)`);
  });
}

/** The files and directories the service opens. */
function checkPaths(doc: Rec, out: string[]): void {
  const at = (obj: unknown, key: string): unknown => (isRec(obj) ? obj[key] : undefined);
  checkFilePath(at(doc['gateway'], 'stateDir'), 'gateway.stateDir', out);
  checkFilePath(at(doc['firewall'], 'manifest'), 'firewall.manifest', out);
  const identity = doc['identity'];
  checkFilePath(at(at(identity, 'tpm'), 'ownerAuthFile'), 'identity.tpm.ownerAuthFile', out);
  checkFilePath(at(at(identity, 'plutonSim'), 'secretFile'), 'identity.plutonSim.secretFile', out);
}

function checkBus(bus: Rec, path: string, out: string[]): void {
  const serial = bus['type'] === 'rtu';
  if (serial) {
    const portProblem = typeof bus['port'] === 'string' ? serialPortProblem(bus['port']) : 'must be a serial device path for type \'rtu\'';
    if (portProblem !== undefined) out.push(`${joinPath(path, 'port')}: ${portProblem}`);
    if ('host' in bus) out.push(`${joinPath(path, 'host')}: only applies to tcp buses`);
  } else if (bus['type'] === 'tcp' || bus['type'] === 'rtu-over-tcp') {
    if (!('host' in bus)) out.push(`${joinPath(path, 'host')}: is required for type '${bus['type']}'`);
    checkHost(bus['host'], joinPath(path, 'host'), out);
    const port = bus['port'];
    if (port !== undefined && !(Number.isInteger(port) && Number(port) >= 1 && Number(port) <= 65535) && !(typeof port === 'string' && placeholderIn(port) !== undefined)) {
      out.push(`${joinPath(path, 'port')}: must be a TCP port 1-65535 for type '${bus['type']}'`);
    }
    for (const key of ['baudRate', 'parity', 'dataBits', 'stopBits']) {
      if (key in bus) out.push(`${joinPath(path, key)}: only applies to rtu (serial) buses`);
    }
  }
  checkBackoff(bus['reconnect'], joinPath(path, 'reconnect'), out);
  const units = new Map<unknown, number>();
  list(bus['devices']).forEach((d, di) => {
    if (!isRec(d)) return;
    const dpath = joinPath(joinPath(path, 'devices'), di);
    if (serial && (d['unitId'] === 0 || (typeof d['unitId'] === 'number' && d['unitId'] > 247))) {
      out.push(`${joinPath(dpath, 'unitId')}: must be 1-247 on a serial bus (got ${String(d['unitId'])})`);
    }
    if (serial) checkTimeout(d, framingOf(bus), dpath, out);
    const seen = units.get(d['unitId']);
    if (seen !== undefined && d['unitId'] !== undefined) {
      out.push(`${joinPath(dpath, 'unitId')}: duplicates devices[${seen}] on this bus (${show(d['unitId'])})`);
    } else units.set(d['unitId'], di);
    checkBackoff(d['backoff'], joinPath(dpath, 'backoff'), out);
    checkRequestSize(d, dpath, out);
    const names = new Map<unknown, number>();
    list(d['points']).forEach((p, pi) => {
      if (!isRec(p)) return;
      const ppath = joinPath(joinPath(dpath, 'points'), pi);
      const prior = names.get(p['name']);
      if (prior !== undefined) out.push(`${joinPath(ppath, 'name')}: duplicates points[${prior}] ('${String(p['name'])}')`);
      else names.set(p['name'], pi);
      checkPoint(p, ppath, out);
    });
  });
}

export function semanticErrors(doc: unknown): string[] {
  const out: string[] = [];
  if (!isRec(doc)) return out;
  checkPlaceholders(doc, '(root)', out);
  checkPaths(doc, out);
  const outbox = doc['outbox'];
  if (isRec(outbox) && outbox['policy'] === 'stop-polling' && outbox['store'] === 'memory') {
    out.push("outbox.policy: 'stop-polling' needs store 'sqlite' (the memory store always drops the oldest)");
  }
  if (isRec(doc['upstream'])) checkMqtt(doc['upstream']['mqtt'], 'upstream.mqtt', out);
  const busNames = new Map<unknown, number>();
  const deviceNames = new Map<unknown, string>();
  list(doc['buses']).forEach((bus, bi) => {
    if (!isRec(bus)) return;
    const path = `buses[${bi}]`;
    const prior = busNames.get(bus['name']);
    if (prior !== undefined) out.push(`${path}.name: duplicates buses[${prior}] ('${String(bus['name'])}')`);
    else busNames.set(bus['name'], bi);
    list(bus['devices']).forEach((d, di) => {
      if (!isRec(d) || d['name'] === undefined) return;
      const dpath = `${path}.devices[${di}]`;
      const first = deviceNames.get(d['name']);
      if (first !== undefined) out.push(`${dpath}.name: duplicates ${first} ('${show(d['name'])}'); device names are unique per gateway`);
      else deviceNames.set(d['name'], dpath);
    });
    checkBus(bus, path, out);
  });
  checkSerialPorts(list(doc['buses']), out);
  return out;
}
