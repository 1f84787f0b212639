/**
 * Secret files of the key stores (the simulated Pluton device secret, the TPM
 * owner authorization): created once, atomically (temp → fsync → link → fsync
 * of the directory, so a crash leaves either no file or the whole file, and an
 * existing file is never replaced), mode 0600, and read through one descriptor
 * opened without following a link, whose type, link count, mode and size are
 * checked before a byte is used.
 */
import { closeSync, lstatSync, readSync } from 'node:fs';
import path from 'node:path';
import { GuardianError } from '../core/errors.js';
import { openRegular, PROCESS_USER, writeFileSafe, type FileUser } from './safe-fs.js';

const MAX_BYTES = 4096;

/** Where a secret file lives: the identity its file operations run as, and the trusted directory above it. */
export interface SecretPlace {
  readonly user: FileUser;
  readonly base: string;
}

export function processPlace(file: string): SecretPlace {
  return { user: PROCESS_USER, base: path.dirname(file) };
}

export function secretError(file: string, what: string, why: string, cause?: unknown): GuardianError {
  return new GuardianError('GUARDIAN_E_KEYSTORE_SECRET', `${what} ${file}: ${why}`, { file }, cause === undefined ? undefined : { cause });
}

function wrap(file: string, what: string, doing: string, err: unknown): GuardianError {
  return err instanceof GuardianError ? err : secretError(file, what, `cannot ${doing} it: ${(err as Error).message}`, err);
}

/** The file's bytes; `check` returns why they are unacceptable, or undefined. */
export function readSecretFile(file: string, what: string, check: (bytes: Buffer) => string | undefined, place = processPlace(file)): Buffer {
  let opened: ReturnType<typeof openRegular>;
  try {
    opened = place.user.run(() => openRegular(file));
  } catch (err) {
    throw wrap(file, what, 'open', err);
  }
  if (opened === undefined) throw secretError(file, what, 'missing; run `guardian identity init`');
  const { fd, st } = opened;
  try {
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

/** True when the file exists and is empty (what a crash of an older version between create and write left). */
function leftEmpty(file: string): boolean {
  try {
    const st = lstatSync(file);
    return st.isFile() && st.size === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Creates the file with these bytes unless it exists; true when it was created.
 * An existing empty file is replaced: nothing can have been made with an empty
 * secret (it is refused before use), and keeping it would block provisioning.
 */
export function createSecretFile(file: string, what: string, content: Buffer, place = processPlace(file)): boolean {
  try {
    return place.user.run(() => writeFileSafe(file, content, leftEmpty(file) ? 'replace' : 'create', place.base));
  } catch (err) {
    throw wrap(file, what, 'create', err);
  }
}
