import { readFile } from 'node:fs/promises';
import type { MqttTlsConfig } from '../../core/config.js';
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
