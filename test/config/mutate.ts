// Mutations of a valid config for the property tests (test/config/fuzz.test.ts, test/cli/bad-configs.test.ts).
import fc from 'fast-check';
import { stringify } from 'yaml';

type Rec = Record<string, unknown>;
export type Path = readonly (string | number)[];

export function baseDoc(stateDir = '/tmp/guardian-fuzz-state'): Rec {
  return {
    version: 1,
    gateway: { id: 'gw-fuzz', stateDir, logLevel: 'info' },
    upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883', protocolVersion: 4, reconnect: { initialMs: 500, maxMs: 1000 } } },
    outbox: { store: 'memory', maxBytes: 65536 },
    buses: [
      { name: 'line1', type: 'rtu', port: '/dev/ttyUSB0', baudRate: 9600, devices: [{ name: 'boiler', unitId: 1, points: [{ name: 'temp', table: 'holding', address: 0, type: 'float32', scale: 0.1 }] }] },
      { name: 'plc', type: 'tcp', host: '10.0.0.3', port: 502, devices: [{ name: 'press', unitId: 1, points: [{ name: 'on', table: 'coil', address: 0, type: 'bool' }, { name: 'b', table: 'holding', address: 1, type: 'bit', bit: 3 }] }] },
    ],
  };
}

/** Every path in a document, containers included. */
export function docPaths(doc: unknown, base: Path = []): Path[] {
  if (Array.isArray(doc)) return [base, ...doc.flatMap((v, i) => docPaths(v, [...base, i]))];
  if (typeof doc === 'object' && doc !== null) return [base, ...Object.entries(doc).flatMap(([k, v]) => docPaths(v, [...base, k]))];
  return [base];
}

export function setAt(doc: Rec, path: Path, value: unknown): void {
  let node: unknown = doc;
  for (const seg of path.slice(0, -1)) {
    if (typeof node !== 'object' || node === null) return; // an earlier mutation removed or replaced a parent
    node = (node as Rec)[seg as string];
  }
  const last = path[path.length - 1];
  if (last === undefined || typeof node !== 'object' || node === null) return;
  if (value === DELETE) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else Reflect.deleteProperty(node, last);
  } else (node as Rec)[last as string] = value;
}

const DELETE = Symbol('delete');

const hostArb = fc.oneof(
  fc.constantFrom('broker', 'broker.example.com', '127.0.0.1', '[::1]', '::1', '999.1.1.1', '1.2.3', 'brökér.de', 'b_r', '-bad', 'a..b', '', '[fe80::1%25eth0]', '[::1', 'host.', '${HOST}'),
  fc.string({ maxLength: 12 }),
  fc.stringMatching(/^[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,2}$/),
);
const portArb = fc.oneof(
  fc.constantFrom('', ':', ':0', ':1', ':1883', ':65535', ':65536', ':99999', ':abc', ':${PORT}', ':01883', ':-1', ': 1'),
  fc.nat({ max: 200000 }).map((n) => `:${n}`),
  fc.string({ maxLength: 6 }).map((s) => `:${s}`),
);
export const urlArb = fc.tuple(
  fc.constantFrom('mqtt://', 'mqtts://', 'tcp://', 'tls://', 'ssl://', 'ws://', 'http://', 'MQTT://', '', 'mqtt:/'),
  fc.constantFrom('', '', '', 'user:pw@', 'user@'),
  hostArb, portArb,
  fc.constantFrom('', '', '/', '/x', '?a=1', '#f', ' '),
).map((parts) => parts.join(''));

const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(DELETE),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.constantFrom('${PORT}', '${STATE_DIR}/x', '$HOME', '', ' ', 'Ä', '0x10', '1e3'),
  fc.integer(), fc.constantFrom(0, -1, 65535, 65536, 2 ** 31, 2 ** 53 + 1, 0.5, -0.0),
  fc.double(), fc.boolean(), fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  urlArb,
);

/** A valid config with 1-3 mutations, as YAML or JSON, sometimes cut short (a syntax error). */
export function mutatedText(paths: readonly Path[], stateDir?: string): fc.Arbitrary<{ text: string; file: string }> {
  const mutation = fc.tuple(fc.constantFrom(...paths), valueArb, fc.option(fc.string({ minLength: 1, maxLength: 12 }), { nil: undefined }));
  return fc.tuple(fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.boolean(), fc.option(fc.nat(), { freq: 5, nil: undefined })).map(([mutations, json, cut]) => {
    const doc = baseDoc(stateDir);
    for (const [path, value, unknownKey] of mutations) {
      if (unknownKey !== undefined && path.length > 0) setAt(doc, [...path.slice(0, -1), unknownKey], value === DELETE ? 1 : value);
      else if (path.length > 0) setAt(doc, path, value);
    }
    const full = json ? JSON.stringify(doc, null, 2) : stringify(doc);
    const text = cut === undefined ? full : full.slice(0, cut % (full.length + 1));
    return { text, file: json ? 'fuzz.json' : 'fuzz.yaml' };
  });
}
