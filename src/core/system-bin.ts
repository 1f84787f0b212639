import { accessSync, constants } from 'node:fs';
import path from 'node:path';

const SYSTEM_BIN = ['/usr/bin', '/usr/local/bin', '/bin', '/usr/sbin', '/sbin'];

/**
 * An executable's absolute path in the system directories, not through PATH
 * (which the environment can change), or its bare name when it is in none of
 * them (the spawn then fails with ENOENT and says which). Guardian runs its
 * helpers (systemd-notify, the tpm2 tools) by this path, and the in-process
 * firewall trusts exactly these paths.
 */
export function systemBinary(name: string): string {
  for (const dir of SYSTEM_BIN) {
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  return name;
}
