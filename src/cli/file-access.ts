/**
 * Whether a given user can read a file or write a directory, computed from the
 * files' owner, group and mode and the user's groups (from /etc/passwd and
 * /etc/group), for every directory on the way down.
 *
 * Why computed and not access(2): access() answers for the calling process
 * only, and check-config usually runs as root (an operator with sudo) while the
 * service runs as its own user (systemd/guardian.service: User=guardian,
 * SupplementaryGroups=dialout). Changing the process's identity (seteuid) to
 * ask the kernel would also change it for libuv's thread pool; a setuid child
 * per check would cost a process per file. The computation covers the classic
 * Unix permission bits; POSIX ACLs and capabilities are not read (a file an
 * ACL opens is reported unreadable: a false alarm, never a false OK for the
 * mode bits). Root (uid 0) reads and writes everything, as the kernel lets it.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

export interface AccessUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Every group the user is in, the primary one included. */
  readonly groups: readonly number[];
}

/** The user the service runs as (systemd/guardian.service `User=` and `SupplementaryGroups=`). */
export const SERVICE_USER = 'guardian';
export const SERVICE_GROUPS: readonly string[] = ['dialout'];

/** The calling process, as the kernel sees it (effective ids). */
export function processUser(): AccessUser {
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  const name = table('/etc/passwd').find((f) => Number(f[2]) === uid)?.[0] ?? `uid ${uid}`;
  return { name, uid, gid, groups: [...new Set([gid, ...(process.getgroups?.() ?? [])])] };
}

function table(file: string): string[][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));
}

/**
 * A user from the passwd and group files, with `extraGroups` (names) added as
 * systemd's SupplementaryGroups= does; undefined when there is no such user.
 */
export function lookupUser(name: string, extraGroups: readonly string[] = [], files = { passwd: '/etc/passwd', group: '/etc/group' }): AccessUser | undefined {
  const entry = table(files.passwd).find((f) => f[0] === name);
  if (entry === undefined) return undefined;
  const uid = Number(entry[2]);
  const gid = Number(entry[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  const groups = new Set([gid]);
  for (const g of table(files.group)) {
    const members = (g[3] ?? '').split(',');
    if (members.includes(name) || extraGroups.includes(g[0] ?? '')) groups.add(Number(g[2]));
  }
  return { name, uid, gid, groups: [...groups] };
}

const R = 4;
const W = 2;
const X = 1;

/** Whether the user may do `bits` (R|W|X) on a file with this stat, by its mode bits. */
export function permits(st: Pick<Stats, 'mode' | 'uid' | 'gid'>, user: AccessUser, bits: number): boolean {
  if (user.uid === 0) return (bits & X) === 0 || (st.mode & 0o111) !== 0;
  const shift = st.uid === user.uid ? 6 : user.groups.includes(st.gid) ? 3 : 0;
  return ((st.mode >> shift) & bits) === bits;
}

function describe(st: Stats): string {
  return `mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${st.uid} gid ${st.gid}`;
}

function kind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device node';
  return 'not a regular file';
}

/** What readProblem and stateDirProblem say of a path that does not exist. */
export const NO_SUCH_FILE = 'no such file';
const NOT_DIR = 'a part of the path is not a directory';

/** stat, or why it failed ('no such file', …) as a reason a person can act on. */
function statOrWhy(file: string): Stats | string {
  try {
    return statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return NO_SUCH_FILE;
    if (code === 'ENOTDIR') return NOT_DIR;
    if (code === 'EACCES') return `cannot be checked: permission denied to this process (${(err as Error).message})`;
    if (code === 'ELOOP') return 'too many levels of symbolic links';
    return `cannot be checked: ${(err as Error).message}`;
  }
}

/** Why the user cannot reach entries in `dir` (search permission on it and every directory above), or undefined. */
function searchProblem(dir: string, user: AccessUser): string | undefined {
  const parts = path.resolve(dir).split(path.sep).filter((p) => p !== '');
  let current: string = path.sep;
  for (const part of ['', ...parts]) {
    current = path.join(current, part);
    const st = statOrWhy(current);
    if (st === NO_SUCH_FILE) return NO_SUCH_FILE;
    if (typeof st === 'string') return `${current}: ${st}`;
    if (!st.isDirectory()) return `${current} is not a directory`;
    if (!permits(st, user, X)) return `user ${user.name} cannot enter ${current} (${describe(st)})`;
  }
  return undefined;
}

/** Why the user cannot read this regular file, or undefined. */
export function readProblem(file: string, user: AccessUser): string | undefined {
  // the directories first: they say which one is not there, not a directory, or closed to the user
  const blocked = searchProblem(path.dirname(path.resolve(file)), user);
  if (blocked !== undefined) return blocked;
  const st = statOrWhy(file);
  if (typeof st === 'string') return st;
  if (!st.isFile()) return `it is ${kind(st)}, not a regular file`;
  return permits(st, user, R) ? undefined : `not readable by user ${user.name} (${describe(st)})`;
}

/**
 * Why the user cannot use `dir` as Guardian's state directory, or undefined: it
 * is a directory the user can write, or it does not exist and the nearest
 * existing directory above lets the user create it. A directory its group or
 * every user may write is refused, as the identity commands refuse it
 * (src/identity/safe-fs.ts `stateUser`): others could swap files in it.
 */
export function stateDirProblem(dir: string, user: AccessUser): string | undefined {
  const st = statOrWhy(dir);
  if (typeof st !== 'string') {
    if (!st.isDirectory()) return `it is ${kind(st)}, not a directory`;
    if ((st.mode & 0o022) !== 0) {
      return `it is writable by ${(st.mode & 0o002) !== 0 ? 'every user' : 'its group'} (${describe(st)}); make it 0700 or 0750`;
    }
    return searchProblem(dir, user) ?? (permits(st, user, W | X) ? undefined : `not writable by user ${user.name} (${describe(st)})`);
  }
  if (st !== NO_SUCH_FILE && st !== NOT_DIR) return st;
  let above = path.dirname(path.resolve(dir));
  for (;;) {
    const up = statOrWhy(above);
    if (typeof up !== 'string') {
      if (!up.isDirectory()) return `it cannot be created: ${above} is not a directory`;
      const blocked = searchProblem(above, user);
      if (blocked !== undefined) return `it does not exist and cannot be created: ${blocked}`;
      return permits(up, user, W | X) ? undefined : `it does not exist, and user ${user.name} cannot create it in ${above} (${describe(up)})`;
    }
    if ((up !== NO_SUCH_FILE && up !== NOT_DIR) || above === path.dirname(above)) return `it does not exist and cannot be created: ${above}: ${up}`;
    above = path.dirname(above);
  }
}
