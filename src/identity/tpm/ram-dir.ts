/**
 * A private directory on a memory-backed file system (tmpfs or ramfs) for the
 * files of one operation that carry a secret a tool must read or write by path
 * (the credential challenge of TPM2_ActivateCredential): mode 0700, a random
 * name, removed afterwards, never in the state directory and never on a disk.
 */
import { lstatSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { GuardianError } from '../../core/errors.js';

/** statfs(2) f_type of the memory-backed file systems. */
export const MEMORY_FS = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);

export interface RamDir {
  readonly dir: string;
  file(name: string): string;
  remove(): void;
}

/** $XDG_RUNTIME_DIR, then /dev/shm: the first that is memory-backed. */
export function memoryBases(env: NodeJS.ProcessEnv = process.env): string[] {
  return [env['XDG_RUNTIME_DIR'], '/dev/shm'].filter((d): d is string => d !== undefined && d !== '' && path.isAbsolute(d));
}

function memoryBacked(dir: string): boolean {
  try {
    return MEMORY_FS.has(statfsSync(dir).type);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EACCES') return false;
    throw err;
  }
}

export function ramDir(bases: readonly string[] = memoryBases()): RamDir {
  for (const base of bases) {
    if (!memoryBacked(base)) continue;
    const dir = mkdtempSync(path.join(base, 'guardian-'));
    const st = lstatSync(dir);
    if (!st.isDirectory() || (st.mode & 0o077) !== 0 || !memoryBacked(dir)) {
      rmSync(dir, { recursive: true, force: true });
      throw new GuardianError('GUARDIAN_E_KEYSTORE_IO', `the private directory ${dir} is not a 0700 directory on a memory-backed file system`, { dir });
    }
    return { dir, file: (name) => path.join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
  }
  throw new GuardianError('GUARDIAN_E_KEYSTORE_IO', `no memory-backed directory for a secret (looked at ${bases.join(', ') || 'nothing'}): mount a tmpfs on /dev/shm or set XDG_RUNTIME_DIR to one`, { dirs: bases.join(',') });
}
