import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { GuardianError } from '../../core/errors.js';
import { blob, corrupt, FORMAT, type ObjectRecord } from '../records.js';

/**
 * A sealed secret's envelope: a 32-byte key sealed by the TPM (the DEK) encrypts the
 * secret with AES-256-GCM, bound to the key's name (the AAD), since a TPM sealed object
 * holds at most 128 bytes. The fields are base64, stored in the record beside the TPM blobs.
 */
export interface EnvelopeFields {
  readonly iv: string;
  readonly tag: string;
  readonly ciphertext: string;
}

/** Encrypt `secret` under `dek` for the key `name`. */
export function closeEnvelope(name: string, dek: Buffer, secret: Buffer): EnvelopeFields {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', dek, iv);
  cipher.setAAD(aad(name));
  const ciphertext = Buffer.concat([cipher.update(secret), cipher.final()]);
  return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
}

/**
 * Decrypt the secret in `record` (read from `file`) with the unsealed `dek`; a changed
 * ciphertext, tag or name is GUARDIAN_E_KEYSTORE_CORRUPT.
 */
export function openEnvelope(name: string, dek: Buffer, record: ObjectRecord, file: string): Buffer {
  try {
    const iv = blob(record, 'iv', file);
    const tag = blob(record, 'tag', file);
    if (dek.length !== 32 || iv.length !== 12 || tag.length !== 16) throw corrupt(file, 'bad key, IV or tag length');
    const decipher = createDecipheriv('aes-256-gcm', dek, iv);
    decipher.setAAD(aad(name));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(blob(record, 'ciphertext', file)), decipher.final()]);
  } catch (err) {
    if (err instanceof GuardianError) throw err;
    throw corrupt(file, 'authentication failed (the ciphertext or its name was changed)', err);
  }
}

function aad(name: string): Buffer {
  return Buffer.from(`${FORMAT}\0tpm\0${name}\0sealed`);
}
