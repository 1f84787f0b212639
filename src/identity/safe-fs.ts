/**
 * Files in the identity state directory. That directory belongs to Guardian's
 * unprivileged user, who can plant symbolic links, FIFOs and hard links in it;
 * the identity commands are documented to run as root. So:
 *
 * - no path is followed through a link: files are opened with O_NOFOLLOW (and
 *   O_NONBLOCK, so a FIFO cannot hang a reader), checked through the open
 *   descriptor (a regular file with one link), and directories on the way are
 *   checked with lstat;
 * - writes go to a temp file with a random name created with
 *   O_CREAT|O_EXCL|O_NOFOLLOW (mode 0600) in the target directory, fsynced,
 *   then renamed (replace) or linked (create-once: an existing file is never
 *   replaced), and the directory is fsynced;
 * - when the process is root and the state directory belongs to another user,
 *   the file operations in it run with that user's file-system identity
 *   (seteuid/setegid/setgroups), so the kernel, not a check, keeps a link from
 *   reaching anything that user could not write anyway, and what is created
 *   is that user's without any chown.
 *
 * A refused file is GUARDIAN_E_IDENTITY_UNSAFE_PATH, naming it and why.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync, constants, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync, type Stats,
} from 'node:fs';
import path from 'node:path';
import { GuardianError } from '../core/errors.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

export function unsafePath(file: string, why: string): GuardianError {
  return new GuardianError('GUARDIAN_E_IDENTITY_UNSAFE_PATH', `refusing ${file}: ${why}; someone who can write the state directory put it there — remove it and check who did`, { file });
}

function kind(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device node';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/** Why a file's stat makes it unusable as one of Guardian's files, or undefined. */
function unusable(st: Stats): string | undefined {
  if (!st.isFile()) return `it is ${kind(st)}`;
  if (st.nlink !== 1) return `it has ${st.nlink} hard links (one may be a file outside the state directory)`;
  return undefined;
}

/**
 * Opens a regular file for reading without following a link or blocking on a
 * FIFO; undefined when it does not exist. The caller closes the descriptor.
 */
export function openRegular(file: string): { fd: number; st: Stats } | undefined {
  let fd: number;
  try {
    fd = openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw unsafePath(file, 'it is a symbolic link');
    throw err;
  }
  const st = fstatSync(fd);
  const why = unusable(st);
  if (why !== undefined) {
    closeSync(fd);
    throw unsafePath(file, why);
  }
  return { fd, st };
}

/** The directories between `base` and `file` that exist are directories, not links. */
export function checkDirs(file: string, base: string): void {
  const rel = path.relative(base, path.dirname(file));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return;
  let current = base;
  for (const part of rel.split(path.sep)) {
    current = path.join(current, part);
    let st: Stats;
    try {
      st = lstatSync(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (!st.isDirectory()) throw unsafePath(current, `it is ${kind(st)}, not a directory`);
  }
}

/** The whole file, or undefined when it does not exist; the directories from `base` down are checked too. */
export function readRegular(file: string, base = path.dirname(file), maxBytes = 1 << 20): Buffer | undefined {
  checkDirs(file, base);
  const opened = openRegular(file);
  if (opened === undefined) return undefined;
  const { fd, st } = opened;
  try {
    if (st.size > maxBytes) throw unsafePath(file, `${st.size} bytes is more than the ${maxBytes} such a file can hold`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return off === buf.length ? buf : buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/** Creates the directories from `base` (trusted, must exist) down to `dir`; none may be a link. */
export function ensureDir(dir: string, base: string): void {
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const rel = path.relative(base, dir);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`ensureDir: ${dir} is not under ${base}`);
  let current = base;
  for (const part of rel === '' ? [] : rel.split(path.sep)) {
    current = path.join(current, part);
    let st: Stats;
    try {
      st = lstatSync(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      try {
        mkdirSync(current, { mode: 0o700 });
      } catch (mkErr) {
        if ((mkErr as NodeJS.ErrnoException).code !== 'EEXIST') throw mkErr;
      }
      st = lstatSync(current);
    }
    if (!st.isDirectory()) throw unsafePath(current, `it is ${kind(st)}, not a directory`);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export type WriteMode = 'replace' | 'create';

/**
 * Writes the file atomically: temp (random name, O_EXCL|O_NOFOLLOW, 0600) →
 * fsync → rename (`replace`) or link (`create`: false when the file exists,
 * which is never replaced) → fsync of the directory. An existing file that is
 * a link, FIFO or hard-linked is refused, not replaced.
 */
export function writeFileSafe(file: string, content: Buffer, mode: WriteMode, base = path.dirname(file)): boolean {
  const dir = path.dirname(file);
  ensureDir(dir, base);
  let existing: Stats | undefined;
  try {
    existing = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing !== undefined) {
    const why = unusable(existing);
    if (why !== undefined) throw unsafePath(file, why);
    if (mode === 'create') return false;
  }
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
  const fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    try {
      let off = 0;
      while (off < content.length) off += writeSync(fd, content, off, content.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (mode === 'replace') {
      renameSync(tmp, file);
    } else {
      try {
        linkSync(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch (err) {
      // after a rename the temp name is gone: that is the expected case
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  fsyncDir(dir);
  return true;
}

const TEMP = /^\.(.+)\.[0-9a-f]{16}\.tmp$/;

/**
 * Removes the temp files a crash left in `dir` (only names this module makes;
 * with `of`, only those for that file name). Returns how many were removed.
 */
export function sweepTemps(dir: string, of?: string): number {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let removed = 0;
  for (const name of names) {
    const m = TEMP.exec(name);
    if (m === null || (of !== undefined && m[1] !== of)) continue;
    unlinkSync(path.join(dir, name)); // unlink removes a link itself, never its target
    removed += 1;
  }
  return removed;
}

/** Runs file operations as the owner of a state directory; see the module comment. */
export interface FileUser {
  run<T>(fn: () => T): T;
}

/** The process's own identity. */
export const PROCESS_USER: FileUser = { run: (fn) => fn() };

let ownerSwitch = false;
/**
 * Let `stateUser` take the state directory owner's identity when root. Only the
 * short, synchronous identity commands turn this on: the file-system identity is
 * process-wide, and in the daemon the thread pool (SQLite, fs) would briefly run
 * as that user too. The daemon runs as the service user anyway.
 */
export function allowOwnerSwitch(): void {
  ownerSwitch = true;
}

/**
 * As root: the owner of `base` (the state directory) when that is another
 * user, for files under `base`; otherwise the process itself. `fn` must be
 * synchronous (the identity is process-wide and is restored before returning).
 */
export function stateUser(base: string): FileUser & { covers(file: string): boolean } {
  const covers = (file: string): boolean => {
    const rel = path.relative(base, file);
    return !rel.startsWith('..') && !path.isAbsolute(rel);
  };
  return {
    covers,
    run<T>(fn: () => T): T {
      if (!ownerSwitch) return fn();
      let owner: Stats;
      try {
        owner = statSync(base);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fn();
        throw err;
      }
      // a directory others may write: they could swap what is checked for something else between the check and the use
      if ((owner.mode & 0o022) !== 0) throw unsafePath(base, `the state directory is writable by ${(owner.mode & 0o002) !== 0 ? 'every user' : 'its group'} (mode ${(owner.mode & 0o7777).toString(8)}); make it 0700 or 0750`);
      if (process.geteuid?.() !== 0 || owner.uid === 0) return fn();
      return asUser(owner.uid, owner.gid, fn);
    },
  };
}

/**
 * A directory for files a command writes outside the state directory (`identity attest
 * --out DIR`): created 0700 when it does not exist; an existing one must be a real
 * directory (not a link) owned by the calling user and writable by no one else, in a
 * parent that others cannot rename it in (not group/world-writable, or sticky like
 * /tmp). Otherwise GUARDIAN_E_IDENTITY_UNSAFE_PATH: as root, a directory someone
 * else prepared (sudo … --out /tmp/quote) would let them aim the files elsewhere.
 */
export function privateDir(dir: string): void {
  const refuse = (file: string, why: string): GuardianError => new GuardianError('GUARDIAN_E_IDENTITY_UNSAFE_PATH', `refusing ${file}: ${why}; use a new directory, or one only you can write`, { file });
  const parent = statSync(path.dirname(path.resolve(dir)));
  if ((parent.mode & 0o022) !== 0 && (parent.mode & 0o1000) === 0) throw refuse(path.dirname(path.resolve(dir)), 'others may write this directory (and it is not sticky), so they can replace what is in it');
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw refuse(dir, `it is ${kind(st)}, not a directory`);
  const me = process.geteuid?.();
  if (me !== undefined && st.uid !== me) throw refuse(dir, `it belongs to uid ${st.uid}, not to the caller (uid ${me})`);
  if ((st.mode & 0o022) !== 0) throw refuse(dir, `it is writable by its group or others (mode ${(st.mode & 0o7777).toString(8)})`);
}

function asUser<T>(uid: number, gid: number, fn: () => T): T {
  const saved = { egid: process.getegid!(), groups: process.getgroups!() };
  process.setgroups!([gid]);
  process.setegid!(gid);
  process.seteuid!(uid);
  try {
    return fn();
  } finally {
    process.seteuid!(0);
    process.setegid!(saved.egid);
    process.setgroups!(saved.groups);
  }
}
