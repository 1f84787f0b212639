import type { ErrorObject } from 'ajv';
import { shownText, shownValue } from './shown.js';

/** `/buses/0/devices/1/name` → `buses[0].devices[1].name`; the root is `(root)`. */
export function pointerToPath(pointer: string): string {
  if (pointer === '') return '(root)';
  let out = '';
  for (const raw of pointer.slice(1).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out;
}

export function joinPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base === '(root)' ? '' : base}[${key}]`;
  return base === '(root)' || base === '' ? key : `${base}.${key}`;
}

const friendlyPatterns: Record<string, string> = {
  '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$': "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
  '^[^#+\\s]+$': "must not contain '#', '+' or white space",
  '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$': 'must be a GUID like 6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f',
  '^(sha1|sha256|sha384|sha512):[0-9]{1,2}(,[0-9]{1,2})*(\\+(sha1|sha256|sha384|sha512):[0-9]{1,2}(,[0-9]{1,2})*)*$': 'must be a PCR selection like sha256:0,1,2,3,4,5,6,7',
};

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] ?? 0;
      row[j] = Math.min(cur + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] ?? 0;
}

/** The closest allowed key, when one is close enough to be a likely typo. */
export function suggestKey(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of allowed) {
    const d = editDistance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function allowedKeys(error: ErrorObject): string[] {
  const parent: unknown = error.parentSchema;
  if (typeof parent === 'object' && parent !== null && 'properties' in parent) {
    const props: unknown = parent.properties;
    if (typeof props === 'object' && props !== null) return Object.keys(props);
  }
  return [];
}

/** A value as a problem quotes it: escaped, cut short, a non-finite number in words (see shown.ts). */
const describeValue = shownValue;

/** One `<path>: <problem>` line per ajv error. */
export function formatSchemaError(error: ErrorObject): string {
  const path = pointerToPath(error.instancePath);
  const p = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(p['additionalProperty']);
      const hint = suggestKey(key, allowedKeys(error));
      return `${joinPath(path, shownText(key, 60, false))}: unknown key${hint === undefined ? '' : ` (did you mean '${hint}'?)`}`;
    }
    case 'required':
      return `${joinPath(path, String(p['missingProperty']))}: is required`;
    case 'dependencies':
      return `${joinPath(path, String(p['missingProperty']))}: is required with '${String(p['property'])}'`;
    case 'enum': {
      const allowed = (p['allowedValues'] as unknown[]).map(describeValue).join(', ');
      return `${path}: must be one of ${allowed} (got ${describeValue(error.data)})`;
    }
    case 'const':
      return `${path}: must be ${describeValue(p['allowedValue'])} (got ${describeValue(error.data)})`;
    case 'type':
      return `${path}: must be ${String(p['type']).replace(',', ' or ')} (got ${describeValue(error.data)})`;
    case 'pattern':
      return `${path}: ${friendlyPatterns[String(p['pattern'])] ?? `must match ${String(p['pattern'])}`} (got ${describeValue(error.data)})`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${path}: must be ${String(p['comparison'])} ${String(p['limit'])} (got ${describeValue(error.data)})`;
    case 'minItems':
      return `${path}: must have at least ${String(p['limit'])} item${p['limit'] === 1 ? '' : 's'}`;
    case 'minLength':
      return `${path}: must not be empty`;
    case 'maxLength':
      return `${path}: must be at most ${String(p['limit'])} characters`;
    default:
      return `${path}: ${error.message ?? error.keyword}`;
  }
}
