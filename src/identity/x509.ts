/**
 * Certificates and certificate requests through @peculiar/x509. The request is
 * signed by a callback (the key store, or a sealed key in memory), so the
 * library never sees a private key: it gets a WebCrypto provider whose `sign`
 * is that callback and whose other operations are Node's. Loaded only by the
 * identity commands (`guardian run` does not carry the X.509 library).
 */
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it, loaded first
import { createHash, createPublicKey, webcrypto } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import * as x509 from '@peculiar/x509';
import { GuardianError } from '../core/errors.js';

/** Signs a SHA-256 digest; returns a DER ECDSA signature. */
export type DigestSigner = (digest: Buffer) => Promise<Buffer>;

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;

function subtleWith(signer: DigestSigner): webcrypto.SubtleCrypto {
  const subtle = webcrypto.subtle;
  return {
    exportKey: subtle.exportKey.bind(subtle),
    importKey: subtle.importKey.bind(subtle),
    digest: subtle.digest.bind(subtle),
    verify: subtle.verify.bind(subtle),
    sign: async (_alg: unknown, _key: unknown, data: ArrayBuffer | ArrayBufferView) => {
      const bytes = ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);
      const der = await signer(createHash('sha256').update(bytes).digest());
      return p256.Signature.fromBytes(der, 'der').toBytes('compact').slice().buffer; // r || s, exactly 64 bytes
    },
  } as unknown as webcrypto.SubtleCrypto;
}

export function parseSubject(subject: string): x509.Name {
  try {
    const name = new x509.Name(subject);
    if (name.toJSON().length === 0) throw new Error('empty');
    return name;
  } catch (err) {
    throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT', `subject ${JSON.stringify(subject)} is not a distinguished name like "CN=gw-01, O=Acme"`, { subject }, { cause: err });
  }
}

/** A PKCS#10 request (PEM) for an ECC P-256 public key, signed through `signer`. */
export async function createCsr(subject: string, publicKeyPem: string, signer: DigestSigner): Promise<string> {
  const name = parseSubject(subject);
  const spki = createPublicKey(publicKeyPem).export({ format: 'der', type: 'spki' });
  const publicKey = await webcrypto.subtle.importKey('spki', spki, EC, true, ['verify']);
  const privateKey = { algorithm: EC, type: 'private', extractable: false, usages: ['sign'] } as unknown as webcrypto.CryptoKey;
  const provider = { subtle: subtleWith(signer), getRandomValues: webcrypto.getRandomValues.bind(webcrypto) } as unknown as webcrypto.Crypto;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys: { publicKey, privateKey },
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  }, provider);
  if (!(await csr.verify())) throw new GuardianError('GUARDIAN_E_INTERNAL', 'the certificate request does not verify against its own public key');
  return csr.toString('pem');
}

export interface CertSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** sha256 over the SubjectPublicKeyInfo DER, hex. */
  readonly keyFingerprint: string;
}

/** The certificates in a PEM file, leaf first; refuses anything else. */
export function parseChain(pem: string, source: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new GuardianError('GUARDIAN_E_CERT_INVALID', `${source} holds no PEM certificate`, { file: source });
  return blocks.map((block, i) => {
    try {
      return new x509.X509Certificate(block);
    } catch (err) {
      throw new GuardianError('GUARDIAN_E_CERT_INVALID', `${source}: certificate ${i + 1} cannot be parsed: ${(err as Error).message}`, { file: source }, { cause: err });
    }
  });
}

export function summary(cert: x509.X509Certificate): CertSummary {
  return {
    subject: cert.subject, issuer: cert.issuer, serial: cert.serialNumber,
    notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString(),
    keyFingerprint: createHash('sha256').update(Buffer.from(cert.publicKey.rawData)).digest('hex'),
  };
}
