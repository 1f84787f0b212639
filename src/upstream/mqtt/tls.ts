import type { KeyObject } from 'node:crypto';
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

export async function readTlsFiles(tls: MqttTlsConfig): Promise<TlsMaterial> {
  const ca = await readPem(tls.ca, 'CA');
  if (tls.cert === undefined || tls.key === undefined) return { ca };
  return { ca, cert: await readPem(tls.cert, 'certificate'), key: await readPem(tls.key, 'key') };
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
