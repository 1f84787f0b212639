/**
 * The device identity on top of a key store:
 * - `identity`: an ECC P-256 signing key that never leaves the store (the CSR
 *   for the device certificate is signed by it);
 * - `tls`: the MQTT/TLS client key. Node's TLS needs the private key in memory,
 *   so it is a software key generated here and sealed by the store; the
 *   daemon unseals it once per process into a KeyObject and never writes it;
 * - `sas`: the IoT Hub symmetric key, imported as an HMAC key;
 * - `attest` (TPM only): the attestation key for quotes.
 * Certificates issued for `identity` or `tls` live next to the keys in `certs/`.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import type { Logger } from 'pino';
import { GuardianError, hasCode } from '../core/errors.js';
import type { Endorsement, KeyStore, Quote } from './keystore.js';
import { writeAtomic } from './records.js';
import { readRegular, stateUser, type FileUser } from './safe-fs.js';
import type { CertSummary, DigestSigner } from './x509.js';

export const IDENTITY_KEY = 'identity';
export const TLS_KEY = 'tls';
export const SAS_KEY = 'sas';
export type CertKey = typeof IDENTITY_KEY | typeof TLS_KEY;
export const CERT_KEYS: readonly CertKey[] = [IDENTITY_KEY, TLS_KEY];

export interface IdentityOptions {
  readonly deviceId: string;
  /** The key store directory; certificates go to `<dir>/certs`. */
  readonly dir: string;
  readonly log: Logger;
}

export interface KeyReport {
  readonly name: string;
  readonly kind: string;
  readonly publicKeyPem?: string;
  readonly fingerprint?: string;
  readonly certificate?: CertSummary;
}

export interface IdentityReport {
  readonly deviceId: string;
  readonly backend: string;
  readonly hardwareBacked: boolean;
  readonly keys: readonly KeyReport[];
}

export interface TlsCredentials {
  /** Unsealed into memory (an OpenSSL key object); never written anywhere. */
  readonly key: KeyObject;
  readonly cert: Buffer;
}

/** sha256 over the SubjectPublicKeyInfo DER, hex (what `openssl pkey -pubin -outform DER | sha256sum` prints). */
export function fingerprint(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ format: 'der', type: 'spki' });
  return createHash('sha256').update(der).digest('hex');
}

export class DeviceIdentity {
  /** As root: certificates are read and written as the state directory's owner, never through a link (safe-fs.ts). */
  private readonly user: FileUser;
  private readonly base: string;

  constructor(readonly store: KeyStore, private readonly options: IdentityOptions) {
    this.base = path.dirname(options.dir);
    this.user = stateUser(this.base);
  }

  certFile(key: CertKey): string {
    return path.join(this.options.dir, 'certs', `${key}.crt`);
  }

  /** Provisions the store and creates the keys that are missing; returns their names. Idempotent. */
  async init(): Promise<string[]> {
    const created: string[] = [];
    await this.store.provision();
    if ((await this.store.describe(IDENTITY_KEY)) === undefined) created.push(IDENTITY_KEY);
    await this.store.createSigningKey(IDENTITY_KEY);
    if ((await this.store.describe(TLS_KEY)) === undefined) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const der = privateKey.export({ format: 'der', type: 'pkcs8' });
      try {
        await this.store.seal(TLS_KEY, der);
      } finally {
        der.fill(0);
      }
      created.push(TLS_KEY);
    }
    if (this.store.hardwareBacked) {
      if ((await this.store.describe('attest')) === undefined) created.push('attest');
      await this.store.createAttestationKey();
    }
    this.options.log.info({ backend: this.store.backend, created }, created.length === 0 ? 'identity: already provisioned' : 'identity: provisioned');
    return created;
  }

  async publicKeyPem(key: CertKey): Promise<string> {
    if (key === TLS_KEY) {
      return createPublicKey(await this.tlsKey()).export({ format: 'pem', type: 'spki' }).toString();
    }
    const info = await this.store.describe(key);
    if (info?.publicKeyPem === undefined) throw new GuardianError('GUARDIAN_E_KEYSTORE_MISSING', `the ${key} key is not provisioned; run \`guardian identity init\``, { name: key });
    return info.publicKeyPem;
  }

  async csr(subject: string, key: CertKey): Promise<string> {
    const publicKeyPem = await this.publicKeyPem(key);
    let signer: DigestSigner;
    if (key === IDENTITY_KEY) {
      signer = (digest) => this.store.sign(IDENTITY_KEY, digest);
    } else {
      const d = Buffer.from((await this.tlsKey()).export({ format: 'jwk' }).d ?? '', 'base64url');
      signer = (digest) => {
        try {
          return Promise.resolve(Buffer.from(p256.sign(digest, d, { prehash: false, format: 'der' })));
        } finally {
          d.fill(0);
        }
      };
    }
    return (await import('./x509.js')).createCsr(subject, publicKeyPem, signer);
  }

  /** Stores an issued certificate (PEM, leaf first, chain allowed) after checking it is for one of the device's keys. */
  async installCert(pem: string, source: string, now = new Date()): Promise<{ key: CertKey } & CertSummary> {
    const { parseChain, summary } = await import('./x509.js');
    const chain = parseChain(pem, source);
    const leaf = chain[0]!;
    const info = summary(leaf);
    let key: CertKey | undefined;
    for (const candidate of CERT_KEYS) {
      if (fingerprint(await this.publicKeyPem(candidate)) === info.keyFingerprint) key = candidate;
    }
    if (key === undefined) {
      throw new GuardianError('GUARDIAN_E_CERT_MISMATCH', `${source} is for the public key sha256:${info.keyFingerprint}, which is neither this device's identity key nor its TLS key`, { file: source, subject: info.subject });
    }
    if (leaf.notAfter.getTime() < now.getTime()) {
      throw new GuardianError('GUARDIAN_E_CERT_INVALID', `${source} expired on ${info.notAfter}`, { file: source, notAfter: info.notAfter });
    }
    if (leaf.notBefore.getTime() > now.getTime()) {
      this.options.log.warn({ notBefore: info.notBefore }, 'identity: the certificate is not valid yet; check the clock (a Raspberry Pi without RTC starts with a stale time)');
    }
    const file = this.certFile(key);
    this.user.run(() => writeAtomic(file, `${chain.map((c) => c.toString('pem')).join('\n')}\n`, this.base));
    this.options.log.info({ key, subject: info.subject, notAfter: info.notAfter }, 'identity: certificate installed');
    return { key, ...info };
  }

  certificate(key: CertKey): Buffer | undefined {
    try {
      return this.user.run(() => readRegular(this.certFile(key), this.base));
    } catch (err) {
      if (err instanceof GuardianError) throw err;
      throw new GuardianError('GUARDIAN_E_KEYSTORE_IO', `cannot read ${this.certFile(key)}: ${(err as Error).message}`, { file: this.certFile(key) }, { cause: err });
    }
  }

  /** The MQTT/TLS client certificate (read each time: a newly installed one is picked up). */
  tlsCertificate(): Buffer {
    const cert = this.certificate(TLS_KEY);
    if (cert === undefined) {
      throw new GuardianError('GUARDIAN_E_KEYSTORE_MISSING', 'no certificate for the TLS key: run `guardian identity csr --key tls --subject …`, have it signed, then `guardian identity install-cert FILE`', { name: TLS_KEY });
    }
    return cert;
  }

  /** The MQTT/TLS client key (unsealed into memory now) and its certificate. */
  async tlsCredentials(): Promise<TlsCredentials> {
    const cert = this.tlsCertificate();
    return { key: await this.tlsKey(), cert };
  }

  importSasKey(secret: Buffer): Promise<unknown> {
    return this.store.importHmacKey(SAS_KEY, secret);
  }

  attest(nonce: Buffer, pcrs: string): Promise<Quote> {
    return this.store.attest(nonce, pcrs);
  }

  endorsement(): Promise<Endorsement> {
    return this.store.endorsement();
  }

  activateCredential(credential: Buffer): Promise<Buffer> {
    return this.store.activateCredential(credential);
  }

  async show(): Promise<IdentityReport> {
    const { parseChain, summary } = await import('./x509.js');
    const keys: KeyReport[] = [];
    for (const info of await this.store.list()) {
      let publicKeyPem = info.publicKeyPem;
      if (info.name === TLS_KEY) publicKeyPem = await this.publicKeyPem(TLS_KEY).catch((err: unknown) => {
        if (hasCode(err, 'GUARDIAN_E_KEYSTORE_MISSING')) return undefined;
        throw err;
      });
      const pem = CERT_KEYS.includes(info.name as CertKey) ? this.certificate(info.name as CertKey) : undefined;
      keys.push({
        name: info.name, kind: info.kind,
        ...(publicKeyPem === undefined ? {} : { publicKeyPem, fingerprint: fingerprint(publicKeyPem) }),
        ...(pem === undefined ? {} : { certificate: summary(parseChain(pem.toString(), this.certFile(info.name as CertKey))[0]!) }),
      });
    }
    return { deviceId: this.options.deviceId, backend: this.store.backend, hardwareBacked: this.store.hardwareBacked, keys };
  }

  /** Unseals the TLS key into a KeyObject (the DER it came from is wiped). */
  async tlsKey(): Promise<KeyObject> {
    const der = await this.store.unseal(TLS_KEY);
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch (err) {
      throw new GuardianError('GUARDIAN_E_KEYSTORE_CORRUPT', `the sealed TLS key does not decode as a PKCS#8 key: ${(err as Error).message}`, { name: TLS_KEY }, { cause: err });
    } finally {
      der.fill(0);
    }
  }
}
