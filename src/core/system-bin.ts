import { accessSync, constants } from 'node:fs';
import path from 'node:path';

const SYSTEM_BIN = ['/usr/bin', '/usr/local/bin', '/bin', '/usr/sbin', '/sbin'] as const;

/**
 * An executable's absolute path in the system directories, never through PATH
 * (which the environment can change). When it is in none of them the answer
 * is still an absolute path (under /usr/bin): running it fails with ENOENT and
 * says which, and a look-alike earlier in PATH is never what runs. Guardian
 * runs its helpers (systemd-notify, the tpm2 tools) by this path, and the
 * in-process firewall trusts exactly these paths.
 */
export function systemBinary(name: string): string {
  if (name === '' || name.includes('/') || name === '.' || name === '..') throw new TypeError(`systemBinary: '${name}' is not a program name`);
  for (const dir of SYSTEM_BIN) {
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not (executable) in this directory: try the next
    }
  }
  return path.join(SYSTEM_BIN[0], name);
}
