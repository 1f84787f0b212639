/**
 * The simulated Pluton key store: for devices without a TPM. Keys are generated
 * and used in this process and stored encrypted at rest with AES-256-GCM under a
 * key derived (HKDF-SHA256) from a 32-byte device secret file of mode 0600. The
 * associated data binds each ciphertext to its name, kind and public key, so a
 * file swapped for another is refused like a damaged one. It is not hardware
 * backed: whoever copies the secret file and the state directory has the keys.
 */
import { createCipheriv, createDecipheriv, createHmac, generateKeyPairSync, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import type { Logger } from 'pino';
import { GuardianError } from '../../core/errors.js';
import {
  checkDigest, checkName, checkSecret, MAX_HMAC_KEY_BYTES, MAX_SEALED_BYTES, missing, settle, type KeyInfo, type KeyStore, type ObjectKind, type Quote, type Endorsement,
} from '../keystore.js';
import { blob, corrupt, describeRecord, FORMAT, listRecords, RecordFiles, info, type ObjectRecord } from '../records.js';
import { sweepTemps } from '../safe-fs.js';
import { createSecretFile, readSecretFile, type SecretPlace } from '../secret-file.js';

export interface PlutonSimOptions {
  /** The key store directory (`<stateDir>/identity`). */
  readonly dir: string;
  /** The device secret: 32 random bytes, mode 0600. */
  readonly secretFile: string;
  readonly log: Logger;
}

const SECRET_BYTES = 32;
const INFO = 'guardian pluton-sim at-rest v1';
const CHECK = 'guardian pluton-sim key check v1';

const WHAT = 'device secret';

function readSecret(file: string, place: SecretPlace): Buffer {
  return readSecretFile(file, WHAT, (b) => (b.length === SECRET_BYTES ? undefined : `${b.length} bytes, expected ${SECRET_BYTES}`), place);
}

/** Creates the device secret unless it exists (a crashed provisioning's secret is kept: nothing was made with another). */
function createSecret(file: string, place: SecretPlace): void {
  const secret = randomBytes(SECRET_BYTES);
  try {
    createSecretFile(file, WHAT, secret, place);
  } finally {
    secret.fill(0);
  }
}

/** The store directories warned about: once per store and process (run's preflight and the daemon each open one). */
const warnedStores = new Set<string>();

export class PlutonSimKeyStore implements KeyStore {
  readonly backend = 'pluton-sim' as const;
  readonly hardwareBacked = false;
  private readonly files: RecordFiles;
  private kek: Buffer | undefined;

  constructor(private readonly options: PlutonSimOptions) {
    this.files = new RecordFiles(options.dir);
  }

  open(): Promise<void> {
    if (!warnedStores.has(this.options.dir)) {
      warnedStores.add(this.options.dir);
      this.options.log.warn({ backend: this.backend, secretFile: this.options.secretFile },
        'key store: simulated Pluton (software); keys are NOT hardware-backed and are only as safe as the device secret file');
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.kek?.fill(0);
    this.kek = undefined;
    return Promise.resolve();
  }

  provisioned(): Promise<boolean> {
    return settle(() => this.files.readRoot() !== undefined);
  }

  provision(): Promise<void> {
    return settle(() => this.provisionSync());
  }

  /**
   * Crash-safe: the secret is written (temp, fsync, link, fsync of the
   * directory) before the root record that depends on it, and each record is
   * written atomically, so a provisioning killed at any point is resumed by the
   * next one; the temp files it left are removed.
   */
  private provisionSync(): void {
    const place = this.place;
    const removed = this.files.sweep() + place.user.run(() => sweepTemps(path.dirname(this.options.secretFile), path.basename(this.options.secretFile)));
    if (removed > 0) this.options.log.warn({ dir: this.options.dir, removed }, 'key store: removed temp files an interrupted write left');
    if (this.files.readRoot() === undefined) {
      createSecret(this.options.secretFile, place);
      const salt = randomBytes(16);
      const kek = this.derive(readSecret(this.options.secretFile, place), salt);
      this.files.writeRoot({ backend: this.backend, data: { salt: salt.toString('base64'), check: check(kek).toString('base64') } });
    }
    this.key();
  }

  private get place(): SecretPlace {
    return this.files.secretPlace(this.options.secretFile);
  }

  describe(name: string): Promise<KeyInfo | undefined> {
    return settle(() => describeRecord(this.files, this.backend, name));
  }

  list(): Promise<KeyInfo[]> {
    return settle(() => listRecords(this.files, this.backend));
  }

  createSigningKey(name: string): Promise<KeyInfo> {
    return settle(() => this.createSigningKeySync(name));
  }

  private createSigningKeySync(name: string): KeyInfo {
    checkName(name);
    const existing = this.files.read(name, this.backend);
    if (existing !== undefined) {
      if (existing.kind !== 'sign') throw missing(name, 'sign');
      return info(existing);
    }
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const d = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
    const publicKeyPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    try {
      return info(this.store(name, 'sign', d, publicKeyPem));
    } finally {
      d.fill(0);
    }
  }

  sign(name: string, digest: Buffer): Promise<Buffer> {
    return settle(() => {
      checkDigest(digest);
      return this.using(name, 'sign', (d) => Buffer.from(p256.sign(digest, d, { prehash: false, format: 'der' })));
    });
  }

  importHmacKey(name: string, secret: Buffer): Promise<KeyInfo> {
    return settle(() => {
      checkName(name);
      checkSecret(secret, 'an HMAC key', MAX_HMAC_KEY_BYTES);
      return info(this.store(name, 'hmac', secret));
    });
  }

  hmac(name: string, data: Buffer): Promise<Buffer> {
    return settle(() => this.using(name, 'hmac', (key) => createHmac('sha256', key).update(data).digest()));
  }

  seal(name: string, secret: Buffer): Promise<KeyInfo> {
    return settle(() => {
      checkName(name);
      checkSecret(secret, 'a sealed secret', MAX_SEALED_BYTES);
      return info(this.store(name, 'sealed', secret));
    });
  }

  unseal(name: string): Promise<Buffer> {
    return settle(() => this.plaintext(name, 'sealed'));
  }

  /** Decrypts a key for one use and wipes it afterwards. */
  private using<T>(name: string, kind: ObjectKind, use: (key: Buffer) => T): T {
    const key = this.plaintext(name, kind);
    try {
      return use(key);
    } finally {
      key.fill(0);
    }
  }

  createAttestationKey(): Promise<KeyInfo> {
    return Promise.reject(noAttestation());
  }

  attest(): Promise<Quote> {
    return Promise.reject(noAttestation());
  }

  endorsement(): Promise<Endorsement> {
    return Promise.reject(noAttestation());
  }

  activateCredential(): Promise<Buffer> {
    return Promise.reject(noAttestation());
  }

  private derive(secret: Buffer, salt: Buffer): Buffer {
    try {
      return Buffer.from(hkdfSync('sha256', secret, salt, INFO, 32));
    } finally {
      secret.fill(0);
    }
  }

  /** The at-rest key, derived once and checked against the root record. */
  private key(): Buffer {
    if (this.kek !== undefined) return this.kek;
    const root = this.files.readRoot();
    if (root === undefined) throw missing('store.json', undefined);
    if (root.backend !== this.backend) throw corrupt(this.files.rootFile, `it belongs to the ${root.backend} backend`);
    const kek = this.derive(readSecret(this.options.secretFile, this.place), blob(root, 'salt', this.files.rootFile));
    const expected = blob(root, 'check', this.files.rootFile);
    const actual = check(kek);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
      throw new GuardianError('GUARDIAN_E_KEYSTORE_AUTH', `the device secret ${this.options.secretFile} is not the one this key store was provisioned with`, { file: this.options.secretFile });
    }
    this.kek = kek;
    return kek;
  }

  private store(name: string, kind: ObjectKind, plaintext: Buffer, publicKeyPem?: string): ObjectRecord {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key(), iv);
    cipher.setAAD(aad(name, kind, publicKeyPem));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return this.files.write({
      backend: this.backend, name, kind, ...(publicKeyPem === undefined ? {} : { publicKeyPem }),
      data: { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') },
    });
  }

  private plaintext(name: string, kind: ObjectKind): Buffer {
    checkName(name);
    const record = this.files.read(name, this.backend);
    if (record === undefined) throw missing(name, undefined);
    if (record.kind !== kind) throw missing(name, kind);
    const file = this.files.objectFile(name);
    const iv = blob(record, 'iv', file);
    const tag = blob(record, 'tag', file);
    if (iv.length !== 12 || tag.length !== 16) throw corrupt(file, 'bad IV or tag length');
    const decipher = createDecipheriv('aes-256-gcm', this.key(), iv);
    decipher.setAAD(aad(name, kind, record.publicKeyPem));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(blob(record, 'ciphertext', file)), decipher.final()]);
    } catch (err) {
      throw corrupt(file, 'authentication failed (the ciphertext, its name, kind or public key was changed)', err);
    }
  }
}

function noAttestation(): GuardianError {
  return new GuardianError('GUARDIAN_E_IDENTITY_UNSUPPORTED', 'the simulated Pluton key store has no PCRs and no endorsement key: it cannot produce a quote or activate a credential; attestation needs a TPM');
}

function check(kek: Buffer): Buffer {
  return createHmac('sha256', kek).update(CHECK).digest();
}

function aad(name: string, kind: ObjectKind, publicKeyPem: string | undefined): Buffer {
  return Buffer.from(`${FORMAT}\0pluton-sim\0${name}\0${kind}\0${publicKeyPem ?? ''}`);
}
