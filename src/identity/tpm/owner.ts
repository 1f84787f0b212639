/**
 * The TPM owner authorization: a file (mode 0600) holding `hex:<hex>` or
 * `str:<text>`, handed to tpm2-tools as `file:<path>` (never on a command
 * line). Needed to create and persist keys, not to use them.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { GuardianError, hasCode } from '../../core/errors.js';
import { createSecretFile, readSecretFile } from '../secret-file.js';
import { rcHex, scratch, type TpmTools } from './tools.js';

const AUTH = 'TPM owner authorization';

function authCheck(bytes: Buffer): string | undefined {
  return /^(hex:([0-9a-fA-F]{2}){1,64}|str:[^\n]{1,64})$/.test(bytes.toString()) ? undefined : 'must hold hex:<hex> or str:<text> (no newline)';
}

export class OwnerAuth {
  constructor(private readonly tools: TpmTools, private readonly file: string, private readonly log: Logger) {}

  /** The tpm2-tools argument for `-P` / `-p`. */
  get arg(): string {
    return `file:${this.file}`;
  }

  /** The file exists, is private and well-formed (its value is checked by the TPM when used). */
  check(): void {
    readSecretFile(this.file, AUTH, authCheck).fill(0);
  }

  /**
   * Creating an object needs the owner authorization even where the TPM would
   * not ask for it (under Guardian's primary key): a transient primary proves it.
   */
  async prove(template: readonly string[]): Promise<void> {
    this.check();
    const s = scratch();
    try {
      await this.tools.run('tpm2_createprimary', ['-C', 'o', '-P', this.arg, ...template, '-c', s.file('primary.ctx')]);
    } finally {
      s.remove();
      await this.tools.run('tpm2_flushcontext', ['-t']);
    }
  }

  /**
   * Checks the owner authorization file. At provisioning, while the TPM's owner
   * authorization is still empty, sets it: to a new random value written to the
   * file when there is no file, or to the file's value (one an operator wrote,
   * or one a run that crashed before changing it left behind).
   */
  /**
   * At provisioning, while the TPM's owner authorization is still empty, sets
   * it: to a new random value written to the file when there is no file, or to
   * the file's value (one an operator wrote, or one a run that crashed before
   * changing it left behind).
   */
  async ensure(): Promise<void> {
    const file = this.file;
    const value = Buffer.from(`hex:${randomBytes(32).toString('hex')}`);
    const created = createSecretFile(file, AUTH, value);
    value.fill(0);
    this.check();
    try {
      await this.tools.run('tpm2_changeauth', ['-c', 'owner', `file:${file}`]);
      this.log.info({ file }, 'key store: TPM owner authorization set');
    } catch (err) {
      if (!hasCode(err, 'GUARDIAN_E_KEYSTORE_AUTH')) {
        if (created) rmSync(file, { force: true });
        throw err;
      }
      // the TPM already has an owner authorization: ours (checked next by creating the primary key) or someone else's
      if (created) {
        rmSync(file, { force: true });
        throw new GuardianError('GUARDIAN_E_KEYSTORE_AUTH', `the TPM already has an owner authorization; write it to ${file} (mode 0600) as hex:<hex> or str:<text>`, { file, rc: rcHex(0x9a2) }, { cause: err });
      }
    }
  }
}
