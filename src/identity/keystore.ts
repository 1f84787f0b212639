/**
 * The one seam for device keys. Two backends implement it: a TPM 2.0 through
 * tpm2-tools (`tpm/`) and the simulated Pluton software store (`pluton-sim/`).
 * No operation returns a private key: signing keys sign, HMAC keys MAC, and a
 * sealed secret is only returned to the process that asks the store to unseal it.
 */
import { GuardianError } from '../core/errors.js';

export type Backend = 'tpm' | 'pluton-sim';

/** What a named object in the store is. */
export type ObjectKind = 'sign' | 'hmac' | 'sealed' | 'attest';

export interface KeyInfo {
  readonly name: string;
  readonly kind: ObjectKind;
  /** SPKI PEM of a signing or attestation key. */
  readonly publicKeyPem?: string;
}

/** A TPM quote: TPMS_ATTEST bytes, the signature over them, and the PCR values quoted. */
export interface Quote {
  readonly nonce: Buffer;
  readonly pcrSelection: string;
  /** TPM2B_ATTEST body (what the signature covers), as tpm2_quote -m writes it. */
  readonly message: Buffer;
  /** TPMT_SIGNATURE, as tpm2_quote -s writes it (what tpm2_checkquote reads). */
  readonly signature: Buffer;
  /** The same signature as DER ECDSA (what openssl and node:crypto verify). */
  readonly signatureDer: Buffer;
  /** TPML_PCR_SELECTION + digests, as tpm2_quote -o writes it. */
  readonly pcrs: Buffer;
  /** The attestation key's public part. */
  readonly akPublicPem: string;
}

/**
 * What ties the attestation key to this TPM: the endorsement key and its
 * manufacturer certificate, and the attestation key's public area and Name
 * for TPM2_MakeCredential.
 */
export interface Endorsement {
  readonly ekPublicPem: string;
  /** DER, from the TPM's NV index 0x01c00002; undefined when the manufacturer stored none. */
  readonly ekCertificate: Buffer | undefined;
  /** TPM2B_PUBLIC of the attestation key, as tpm2_readpublic -o writes it. */
  readonly akPublic: Buffer;
  /** The attestation key's Name: nameAlg (0x000b) || SHA-256 of its TPMT_PUBLIC. */
  readonly akName: Buffer;
}

export interface KeyStore {
  readonly backend: Backend;
  /** False for the simulated Pluton store: its keys are only as safe as the device secret file. */
  readonly hardwareBacked: boolean;
  /** Opens the store; does not create anything. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** True when the store's root (TPM primary key / device secret) exists. */
  provisioned(): Promise<boolean>;
  /** Creates the root: the TPM owner authorization and primary key, or the device secret. Idempotent. */
  provision(): Promise<void>;
  /** The named object, or undefined. */
  describe(name: string): Promise<KeyInfo | undefined>;
  list(): Promise<KeyInfo[]>;
  /** Creates (or opens, when it exists) an ECC P-256 signing key. */
  createSigningKey(name: string): Promise<KeyInfo>;
  /** Signs a SHA-256 digest (32 bytes); the result is a DER ECDSA signature. */
  sign(name: string, digest: Buffer): Promise<Buffer>;
  /** Imports a symmetric key as an HMAC-SHA256 key; replaces an existing one of that name. */
  importHmacKey(name: string, secret: Buffer): Promise<KeyInfo>;
  hmac(name: string, data: Buffer): Promise<Buffer>;
  /** Seals a small secret (at most MAX_SEALED_BYTES); replaces an existing one of that name. */
  seal(name: string, secret: Buffer): Promise<KeyInfo>;
  unseal(name: string): Promise<Buffer>;
  /** Creates (or opens) the attestation key: a restricted signing key that signs only TPM-made quotes. */
  createAttestationKey(): Promise<KeyInfo>;
  /** A quote over the PCR selection with the caller's nonce, signed by the attestation key. */
  attest(nonce: Buffer, pcrSelection: string): Promise<Quote>;
  /** The endorsement key and the attestation key's Name (TPM only). */
  endorsement(): Promise<Endorsement>;
  /** TPM2_ActivateCredential: the challenge in a credential made for this TPM's EK and attestation key (TPM only). */
  activateCredential(credential: Buffer): Promise<Buffer>;
}

export const MAX_SEALED_BYTES = 16 * 1024;
/** The TPM's limit for an imported keyed-hash key (MAX_SYM_DATA); the same for both backends. */
export const MAX_HMAC_KEY_BYTES = 128;
export const MAX_NONCE_BYTES = 32;

const NAME = /^[a-z][a-z0-9-]{0,31}$/;

export function checkName(name: string): void {
  if (!NAME.test(name)) throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT', `key name ${JSON.stringify(name)} must be 1-32 of a-z, 0-9 and -, starting with a letter`, { name });
}

export function checkDigest(digest: Buffer): void {
  if (digest.length !== 32) throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT', `sign takes a SHA-256 digest (32 bytes), got ${digest.length} bytes`, { bytes: digest.length });
}

export function checkSecret(secret: Buffer, what: string, max: number): void {
  if (secret.length === 0 || secret.length > max) {
    throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT', `${what} must be 1-${max} bytes, got ${secret.length}`, { bytes: secret.length });
  }
}

export function checkNonce(nonce: Buffer): void {
  if (nonce.length === 0 || nonce.length > MAX_NONCE_BYTES) {
    throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT', `the nonce must be 1-${MAX_NONCE_BYTES} bytes, got ${nonce.length}`, { bytes: nonce.length });
  }
}

/** `sha256:0,1,2` (one or more banks separated by +), PCRs 0-23. */
export function checkPcrSelection(selection: string): void {
  const bank = /^(sha1|sha256|sha384|sha512):([0-9]{1,2})(,[0-9]{1,2})*$/;
  const ok = selection.split('+').every((part) => bank.test(part) && part.split(':')[1]!.split(',').every((n) => Number(n) <= 23));
  if (!ok) throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT', `PCR selection ${JSON.stringify(selection)} must look like sha256:0,1,2,3,4,5,6,7 (PCRs 0-23)`, { selection });
}

/** The SAS key's object name (identity.ts SAS_KEY): `identity import-sas-key` stores it, not `identity init`. */
const SAS_OBJECT = 'sas';

export function missing(name: string, kind: ObjectKind | undefined): GuardianError {
  return new GuardianError('GUARDIAN_E_KEYSTORE_MISSING', kind === undefined
    ? `the key store has no object named ${name}; run \`guardian identity ${name === SAS_OBJECT ? 'import-sas-key' : 'init'}\``
    : `the key store's ${name} is not a ${kind} key`, { name });
}

/** Runs fn and returns its result as a promise; a throw becomes a rejection. */
export function settle<T>(fn: () => T | Promise<T>): Promise<T> {
  return new Promise<T>((resolve) => {
    resolve(fn());
  });
}

/** Serialises async operations: each starts after the previous one settled. */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => T | Promise<T>): Promise<T> {
    const next = this.tail.then(op, op);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
