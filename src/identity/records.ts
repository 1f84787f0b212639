/**
 * The key store's files: `<dir>/store.json` (the root) and `<dir>/keys/<name>.json`
 * (one per object). They hold public keys and wrapped or encrypted blobs only.
 * Every write is atomic (temp file with a random name, fsync, rename, fsync of
 * the directory) with mode 0600; no link is followed (`safe-fs.ts`), and as
 * root the files are read and written as the state directory's owner. Every
 * read is validated, and a damaged file is refused with
 * GUARDIAN_E_KEYSTORE_CORRUPT naming it.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { GuardianError } from '../core/errors.js';
import { checkName, type Backend, type KeyInfo, type ObjectKind } from './keystore.js';
import { processPlace, type SecretPlace } from './secret-file.js';
import { checkDirs, readRegular, stateUser, sweepTemps, writeFileSafe, type FileUser } from './safe-fs.js';

export const FORMAT = 'guardian-keystore/1';

export interface ObjectRecord {
  readonly format: typeof FORMAT;
  readonly backend: Backend;
  readonly name: string;
  readonly kind: ObjectKind;
  readonly created: string;
  readonly publicKeyPem?: string;
  /** Backend-specific: base64 blobs, a TPM handle. */
  readonly data: Readonly<Record<string, string | number>>;
}

export interface RootRecord {
  readonly format: typeof FORMAT;
  readonly backend: Backend;
  readonly created: string;
  readonly data: Readonly<Record<string, string | number>>;
}

const data = { type: 'object', additionalProperties: { type: ['string', 'number'] } } as const;
const base = {
  format: { const: FORMAT },
  backend: { enum: ['tpm', 'pluton-sim'] },
  created: { type: 'string' },
  data,
} as const;
const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const validObject = ajv.compile({
  type: 'object', additionalProperties: false, required: ['format', 'backend', 'name', 'kind', 'created', 'data'],
  properties: { ...base, name: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,31}$' }, kind: { enum: ['sign', 'hmac', 'sealed', 'attest'] }, publicKeyPem: { type: 'string' } },
});
const validRoot = ajv.compile({ type: 'object', additionalProperties: false, required: ['format', 'backend', 'created', 'data'], properties: base });

export function corrupt(file: string, why: string, cause?: unknown): GuardianError {
  return new GuardianError('GUARDIAN_E_KEYSTORE_CORRUPT', `key store file ${file} is damaged or was tampered with: ${why}`, { file }, cause === undefined ? undefined : { cause });
}

/** Base64 field of a record; a missing or non-base64 field is corruption. */
export function blob(record: ObjectRecord | RootRecord, field: string, file: string): Buffer {
  const value = record.data[field];
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw corrupt(file, `field data.${field} is missing or not base64`);
  return Buffer.from(value, 'base64');
}

function ioError(what: string, file: string, cause: unknown): GuardianError {
  return new GuardianError('GUARDIAN_E_KEYSTORE_IO', `cannot ${what} key store file ${file}: ${(cause as Error).message}`, { file }, { cause });
}

/** An atomic write (see safe-fs.ts) of a file that is not a secret; an unsafe existing file is refused. */
export function writeAtomic(file: string, content: string | Buffer, base = path.dirname(file)): void {
  try {
    writeFileSafe(file, typeof content === 'string' ? Buffer.from(content) : content, 'replace', base);
  } catch (err) {
    if (err instanceof GuardianError) throw err;
    throw ioError('write', file, err);
  }
}

export class RecordFiles {
  /** As root: the state directory's owner (the parent of `dir`). */
  readonly user: FileUser;
  readonly base: string;
  private readonly state: ReturnType<typeof stateUser>;

  constructor(readonly dir: string) {
    this.base = path.dirname(dir);
    this.state = stateUser(this.base);
    this.user = this.state;
  }

  /** Where a secret file is handled: as the state directory's owner when it is in it, else as the process. */
  secretPlace(file: string): SecretPlace {
    return this.state.covers(file) ? { user: this.user, base: this.base } : processPlace(file);
  }

  get rootFile(): string {
    return path.join(this.dir, 'store.json');
  }

  objectFile(name: string): string {
    return path.join(this.dir, 'keys', `${name}.json`);
  }

  readRoot(): RootRecord | undefined {
    const value = this.readJson(this.rootFile);
    if (value === undefined) return undefined;
    if (!validRoot(value)) throw corrupt(this.rootFile, 'not a key store root record');
    return value;
  }

  writeRoot(record: Omit<RootRecord, 'format' | 'created'>): RootRecord {
    const full: RootRecord = { format: FORMAT, created: new Date().toISOString(), ...record };
    this.user.run(() => writeAtomic(this.rootFile, `${JSON.stringify(full, null, 2)}\n`, this.base));
    return full;
  }

  read(name: string, backend: Backend): ObjectRecord | undefined {
    const file = this.objectFile(name);
    const value = this.readJson(file);
    if (value === undefined) return undefined;
    if (!validObject(value)) throw corrupt(file, 'not a key store object record');
    const record = value as unknown as ObjectRecord;
    if (record.name !== name) throw corrupt(file, `it holds ${record.name}, not ${name}`);
    if (record.backend !== backend) throw corrupt(file, `it belongs to the ${record.backend} backend, this store is ${backend}`);
    return record;
  }

  write(record: Omit<ObjectRecord, 'format' | 'created'>): ObjectRecord {
    const full: ObjectRecord = { format: FORMAT, created: new Date().toISOString(), ...record };
    this.user.run(() => writeAtomic(this.objectFile(record.name), `${JSON.stringify(full, null, 2)}\n`, this.base));
    return full;
  }

  /** Removes the temp files a crash left behind (see safe-fs.ts); returns how many. */
  sweep(): number {
    return this.user.run(() => {
      checkDirs(this.objectFile('x'), this.base);
      checkDirs(path.join(this.dir, 'certs', 'x'), this.base);
      return sweepTemps(this.dir) + sweepTemps(path.join(this.dir, 'keys')) + sweepTemps(path.join(this.dir, 'certs'));
    });
  }

  names(): string[] {
    try {
      return this.user.run(() => {
        checkDirs(this.objectFile('x'), this.base);
        return readdirSync(path.join(this.dir, 'keys'));
      }).filter((f) => /^[a-z][a-z0-9-]{0,31}\.json$/.test(f)).map((f) => f.slice(0, -5)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  private readJson(file: string): unknown {
    let bytes: Buffer | undefined;
    try {
      bytes = this.user.run(() => readRegular(file, this.base));
    } catch (err) {
      if (err instanceof GuardianError) throw err;
      throw ioError('read', file, err);
    }
    if (bytes === undefined) return undefined;
    const text = bytes.toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw corrupt(file, 'not valid JSON', err);
    }
  }
}

export function info(record: ObjectRecord): KeyInfo {
  return { name: record.name, kind: record.kind, ...(record.publicKeyPem === undefined ? {} : { publicKeyPem: record.publicKeyPem }) };
}

export function describeRecord(files: RecordFiles, backend: Backend, name: string): KeyInfo | undefined {
  checkName(name);
  const record = files.read(name, backend);
  return record === undefined ? undefined : info(record);
}

export function listRecords(files: RecordFiles, backend: Backend): KeyInfo[] {
  return files.names().flatMap((n) => {
    const r = files.read(n, backend);
    return r === undefined ? [] : [info(r)];
  });
}
