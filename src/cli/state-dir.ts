/**
 * What the mode bits of the state directory do not show: the file system it is
 * on (a read-only mount, a pseudo file system such as /proc or /sys) and the
 * entries Guardian keeps in it, which must have the type the daemon opens them
 * as (src/daemon/daemon.ts: outbox.db, commands.journal; src/health/failure-store.ts:
 * failures/; the key store: identity/).
 */
import { closeSync, lstatSync, openSync, readFileSync, readSync, realpathSync, type Stats } from 'node:fs';
import path from 'node:path';

/** One mount from /proc/self/mountinfo. */
export interface Mount {
  readonly point: string;
  readonly fsType: string;
  /** The per-mount and the super block options together (`ro` in either makes it read-only). */
  readonly options: readonly string[];
}

/** Octal escapes (`\040` for a space) in mountinfo's paths. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mounts of this process's mount namespace (proc(5), /proc/PID/mountinfo). */
export function parseMountinfo(text: string): Mount[] {
  return text.split('\n').filter((l) => l !== '').flatMap((line) => {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    const point = fields[4];
    const fsType = fields[dash + 1];
    if (dash < 6 || point === undefined || fsType === undefined) return [];
    return [{ point: unescape(point), fsType, options: [...(fields[5] ?? '').split(','), ...(fields[dash + 3] ?? '').split(',')] }];
  });
}

/** The mount that holds `file` (a real path): the longest mount point that is a prefix of it; the last one mounted wins a tie. */
export function mountOf(file: string, mounts: readonly Mount[]): Mount | undefined {
  let best: Mount | undefined;
  for (const m of mounts) {
    const inside = m.point === '/' || file === m.point || file.startsWith(`${m.point}/`);
    if (inside && (best === undefined || m.point.length >= best.point.length)) best = m;
  }
  return best;
}

/** File systems that hold no files of their own: nothing Guardian writes could be kept there. */
const PSEUDO = new Set(['proc', 'sysfs', 'devtmpfs', 'devpts', 'cgroup', 'cgroup2', 'debugfs', 'tracefs', 'securityfs', 'pstore', 'bpf', 'configfs',
  'fusectl', 'mqueue', 'hugetlbfs', 'efivarfs', 'binfmt_misc', 'autofs', 'nsfs', 'selinuxfs', 'rpc_pipefs']);

/** The nearest existing directory at or above `dir`, as a real path (links resolved). */
function existingReal(dir: string): string | undefined {
  let current = path.resolve(dir);
  for (;;) {
    try {
      return realpathSync(current);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || current === path.dirname(current)) return undefined;
      current = path.dirname(current);
    }
  }
}

/** Why the state directory's file system cannot keep Guardian's state, or undefined (also when mountinfo cannot be read). */
export function mountProblem(dir: string, mountinfo = '/proc/self/mountinfo'): string | undefined {
  const real = existingReal(dir);
  if (real === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(mountinfo, 'utf8');
  } catch (err) {
    // not Linux, or /proc not mounted: the mode bits are all that can be checked
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const mount = mountOf(real, parseMountinfo(text));
  if (mount === undefined) return undefined;
  if (PSEUDO.has(mount.fsType)) return `it is on ${mount.point}, a ${mount.fsType} file system, which cannot hold Guardian's files; use a directory on a disk (e.g. /var/lib/guardian)`;
  if (mount.options.includes('ro')) return `it is on ${mount.point}, which is mounted read-only (${mount.fsType}); the outbox and the journal are written there: use a writable file system or remount it rw`;
  return undefined;
}

function lstatOrUndefined(file: string): Stats | undefined {
  try {
    return lstatSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

function kindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'a device node';
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** outbox.db is empty (SQLite makes an empty file a new database) or starts with SQLite's header. */
function outboxHeaderProblem(file: string): string | undefined {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(SQLITE_HEADER.length);
    const n = readSync(fd, head, 0, head.length, 0);
    return n === 0 || head.equals(SQLITE_HEADER) ? undefined : 'it is not an SQLite database (no "SQLite format 3" header); move it away and Guardian makes a new outbox';
  } finally {
    closeSync(fd);
  }
}

/** The entries the daemon keeps in the state directory and what each must be. */
const ENTRIES: readonly { readonly name: string; readonly dir: boolean }[] = [
  { name: 'identity', dir: true },
  { name: 'failures', dir: true },
  { name: 'commands.journal', dir: false },
  { name: 'outbox.db', dir: false },
  { name: 'outbox.db-wal', dir: false },
  { name: 'outbox.db-shm', dir: false },
];

/**
 * Problems with the state directory itself being a link, and with the entries in it
 * that exist: `<file>: <why>` each (the caller prefixes the config path).
 */
export function stateEntryProblems(dir: string): string[] {
  const top = lstatOrUndefined(dir);
  if (top === undefined) return [];
  if (top.isSymbolicLink()) {
    return [`${dir}: it is a symbolic link (to ${realpathOr(dir)}); the identity files refuse to follow links: set gateway.stateDir to the real path`];
  }
  if (!top.isDirectory()) return [];
  return ENTRIES.flatMap(({ name, dir: isDir }) => {
    const file = path.join(dir, name);
    const st = lstatOrUndefined(file);
    if (st === undefined) return [];
    if (isDir && !st.isDirectory()) return [`${file}: it is ${kindOf(st)}, not a directory; move it away (Guardian makes the directory)`];
    if (!isDir && !st.isFile()) return [`${file}: it is ${kindOf(st)}, not a regular file; move it away (Guardian makes the file)`];
    const header = name === 'outbox.db' ? outboxHeaderProblem(file) : undefined;
    return header === undefined ? [] : [`${file}: ${header}`];
  });
}

function realpathOr(file: string): string {
  try {
    return realpathSync(file);
  } catch (err) {
    return `an unresolvable target: ${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}
