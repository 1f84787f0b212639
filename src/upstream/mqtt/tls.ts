import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { MqttTlsConfig } from '../../config/types.js';
import { GuardianError } from '../../core/errors.js';

export interface TlsMaterial {
  /** The only trust anchor for the broker (system CAs are not used). */
  readonly ca: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new GuardianError('GUARDIAN_E_TLS_FILE', `cannot read TLS ${what} ${path}: ${(err as Error).message}`, { path, what }, { cause: err });
  }
}

/**
 * The TLS files as the daemon uses them, read and checked: the CA holds PEM
 * certificates, the client certificate one, the key an unencrypted private key
 * that matches it. Bad contents are GUARDIAN_E_TLS_FILE naming the config path,
 * never an OpenSSL error thrown later inside a connect.
 */
export async function readTlsFiles(tls: MqttTlsConfig): Promise<TlsMaterial> {
  const ca = await readPem(tls.ca, 'CA');
  const material: TlsMaterial = tls.cert === undefined || tls.key === undefined
    ? { ca }
    : { ca, cert: await readPem(tls.cert, 'certificate'), key: await readPem(tls.key, 'key') };
  const problems = tlsContentProblems(tls, material);
  if (problems.length > 0) {
    throw new GuardianError('GUARDIAN_E_TLS_FILE', `unusable TLS files: ${problems.map((p) => `${p.path}: ${p.file}: ${p.why}`).join('; ')}`, { path: problems[0]!.file, what: problems[0]!.path });
  }
  return material;
}

export interface TlsContentProblem {
  /** The config path (`upstream.mqtt.tls.ca`, …). */
  readonly path: string;
  readonly file: string;
  readonly why: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The PEM certificates in a file, or why there are none usable. */
function certificates(pem: Buffer): X509Certificate[] | string {
  const blocks = pem.toString('latin1').match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) return 'it holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)';
  const certs: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block));
    } catch (err) {
      return `its certificate #${i + 1} cannot be parsed (${(err as NodeJS.ErrnoException).code ?? 'invalid'})`;
    }
  }
  return certs;
}

const ENCRYPTED = /-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m;

/** The private key, or why it is not usable (Guardian has no passphrase option: an encrypted key is refused). */
function privateKey(pem: Buffer): KeyObject | string {
  if (ENCRYPTED.test(pem.toString('latin1'))) {
    return 'the private key is encrypted and Guardian takes no passphrase: decrypt it (`openssl pkey -in KEY -out PLAIN`) and keep it mode 0600';
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    // whatever OpenSSL's reason (no PEM block, a certificate, bad base64), the fix is the same
    if (!(err instanceof Error)) throw err;
    return 'it holds no PEM private key that can be read (-----BEGIN PRIVATE KEY-----, or an RSA/EC key)';
  }
}

/** What is wrong with the contents of the TLS files, one entry per file. */
export function tlsContentProblems(tls: MqttTlsConfig, material: TlsMaterial): TlsContentProblem[] {
  const problems: TlsContentProblem[] = [];
  const ca = certificates(material.ca);
  if (typeof ca === 'string') problems.push({ path: 'upstream.mqtt.tls.ca', file: tls.ca, why: ca });
  if (material.cert === undefined || material.key === undefined || tls.cert === undefined || tls.key === undefined) return problems;
  const cert = certificates(material.cert);
  if (typeof cert === 'string') problems.push({ path: 'upstream.mqtt.tls.cert', file: tls.cert, why: cert });
  const key = privateKey(material.key);
  if (typeof key === 'string') problems.push({ path: 'upstream.mqtt.tls.key', file: tls.key, why: key });
  else if (typeof cert !== 'string' && !cert[0]!.checkPrivateKey(key)) {
    problems.push({ path: 'upstream.mqtt.tls.key', file: tls.key, why: `the key does not match the certificate in ${tls.cert} (upstream.mqtt.tls.cert)` });
  }
  return problems;
}

const B64 = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');

/** PEM of DER bytes, built in a Buffer (never a string, which could not be wiped). */
export function pemBuffer(der: Buffer, label: string): Buffer {
  const head = Buffer.from(`-----BEGIN ${label}-----\n`);
  const tail = Buffer.from(`-----END ${label}-----\n`);
  const chars = 4 * Math.ceil(der.length / 3);
  const out = Buffer.alloc(head.length + chars + Math.ceil(chars / 64) + tail.length);
  let o = head.copy(out, 0);
  let col = 0;
  const put = (c: number): void => {
    out[o++] = c;
    if (++col === 64) {
      out[o++] = 0x0a;
      col = 0;
    }
  };
  for (let i = 0; i < der.length; i += 3) {
    const n = (der[i]! << 16) | ((der[i + 1] ?? 0) << 8) | (der[i + 2] ?? 0);
    put(B64[(n >> 18) & 63]!);
    put(B64[(n >> 12) & 63]!);
    put(i + 1 < der.length ? B64[(n >> 6) & 63]! : 0x3d);
    put(i + 2 < der.length ? B64[n & 63]! : 0x3d);
  }
  if (col !== 0) out[o++] = 0x0a;
  o += tail.copy(out, o);
  return out.subarray(0, o);
}

/**
 * A TLS context holding the CA and a client key and certificate. Node 20's TLS
 * takes a key only as PEM/DER bytes, not a KeyObject: the key is exported
 * once into a Buffer, handed to OpenSSL, and the Buffer is wiped; from then on
 * the key lives only inside OpenSSL (the context and the KeyObject).
 */
export function clientContext(ca: Buffer, cert: Buffer, key: KeyObject): SecureContext {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  const pem = pemBuffer(der, 'PRIVATE KEY');
  der.fill(0);
  try {
    return createSecureContext({ ca, cert, key: pem });
  } finally {
    pem.fill(0);
  }
}
