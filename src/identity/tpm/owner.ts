/**
 * The TPM owner authorization: a file (mode 0600) holding `hex:<hex>` or
 * `str:<text>`, handed to tpm2-tools as `file:<path>` (never on a command
 * line). Needed to create and persist keys, not to use them.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { GuardianError, hasCode } from '../../core/errors.js';
import { createSecretFile, processPlace, readSecretFile, type SecretPlace } from '../secret-file.js';
import { rcHex, scratch, type TpmTools } from './tools.js';

const AUTH = 'TPM owner authorization';

function authCheck(bytes: Buffer): string | undefined {
  return /^(hex:([0-9a-fA-F]{2}){1,64}|str:[^\n]{1,64})$/.test(bytes.toString()) ? undefined : 'must hold hex:<hex> or str:<text> (no newline)';
}

export class OwnerAuth {
  constructor(private readonly tools: TpmTools, private readonly file: string, private readonly log: Logger, private readonly place: SecretPlace = processPlace(file)) {}

  /** The tpm2-tools argument for `-P` / `-p`. */
  get arg(): string {
    return `file:${this.file}`;
  }

  /** The file exists, is private and well-formed (its value is checked by the TPM when used). */
  check(): void {
    readSecretFile(this.file, AUTH, authCheck, this.place).fill(0);
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
   * At provisioning, while the TPM's owner authorization is still empty, sets
   * it: to a new random value when there is no file, or to the file's value
   * (one an operator wrote, or one an interrupted run left behind).
   *
   * Crash-safe: the file is on disk (temp, fsync, link, fsync of the
   * directory) before tpm2_changeauth runs, and it is never deleted or
   * replaced afterwards: the TPM may hold its value even when the call
   * failed (killed, timed out, the TPM went away after answering). A rerun
   * asks the TPM: the change succeeds while its authorization is still empty,
   * and is refused (TPM_RC_BAD_AUTH) once it holds ours, which the primary key
   * then proves.
   */
  async ensure(): Promise<void> {
    const file = this.file;
    const value = Buffer.from(`hex:${randomBytes(32).toString('hex')}`);
    let created: boolean;
    try {
      created = createSecretFile(file, AUTH, value, this.place);
    } finally {
      value.fill(0);
    }
    this.check();
    this.log.info({ file, step: 'owner-auth-written', created }, 'provisioning: TPM owner authorization file on disk');
    try {
      await this.tools.run('tpm2_changeauth', ['-c', 'owner', `file:${file}`]);
      this.log.info({ file, step: 'owner-auth-set' }, 'key store: TPM owner authorization set');
    } catch (err) {
      if (!hasCode(err, 'GUARDIAN_E_KEYSTORE_AUTH')) throw err;
      // the TPM already has an owner authorization: ours (set by an interrupted run; the primary key checks it) or someone else's
      if (created) {
        throw new GuardianError('GUARDIAN_E_KEYSTORE_AUTH', `the TPM already has an owner authorization; write it to ${file} (mode 0600) as hex:<hex> or str:<text>, replacing the value this run generated`, { file, rc: rcHex(0x9a2) }, { cause: err });
      }
      this.log.info({ file, step: 'owner-auth-present' }, 'provisioning: the TPM already has an owner authorization; checking it is the one in the file');
    }
  }
}
