/**
 * Secret files of the key stores (the simulated Pluton device secret, the TPM
 * owner authorization): created once with O_EXCL and mode 0600, read through one
 * descriptor whose type, mode and size are checked before a byte is used.
 */
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { GuardianError } from '../core/errors.js';

const MAX_BYTES = 4096;

export function secretError(file: string, what: string, why: string, cause?: unknown): GuardianError {
  return new GuardianError('GUARDIAN_E_KEYSTORE_SECRET', `${what} ${file}: ${why}`, { file }, cause === undefined ? undefined : { cause });
}

/** The file's bytes; `check` returns why they are unacceptable, or undefined. */
export function readSecretFile(file: string, what: string, check: (bytes: Buffer) => string | undefined): Buffer {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw secretError(file, what, code === 'ENOENT' ? 'missing; run `guardian identity init`' : (err as Error).message, err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw secretError(file, what, 'not a regular file');
    if ((st.mode & 0o077) !== 0) throw secretError(file, what, `mode ${(st.mode & 0o777).toString(8)} lets others read it; it must be 0600`);
    if (st.size > MAX_BYTES) throw secretError(file, what, `${st.size} bytes is too large`);
    const buf = Buffer.alloc(st.size);
    if (st.size > 0 && readSync(fd, buf, 0, st.size, 0) !== st.size) throw secretError(file, what, 'short read');
    const why = check(buf);
    if (why !== undefined) {
      buf.fill(0);
      throw secretError(file, what, why);
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Creates the file with these bytes unless it exists; true when it was created. */
export function createSecretFile(file: string, what: string, content: Buffer): boolean {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw secretError(file, what, `cannot create it: ${(err as Error).message}`, err);
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}
