/**
 * Azure IoT Hub shared access signatures, the HMAC computed by the key store
 * (inside the TPM when there is one) from the imported device or policy key:
 *
 *   string to sign = encodeURIComponent(resourceUri) + "\n" + expiry
 *   token = SharedAccessSignature sr=<encoded uri>&sig=<encoded base64 HMAC-SHA256>&se=<expiry>[&skn=<policy>]
 *
 * (the Azure IoT SDKs' format; expiry in seconds since the epoch).
 */
import type { SasConfig } from '../config/types.js';
import { SAS_KEY } from './identity.js';
import type { KeyStore } from './keystore.js';

export interface SasToken {
  readonly token: string;
  /** ms since the epoch. */
  readonly expiresAt: number;
}

export function stringToSign(resourceUri: string, expiry: number): string {
  return `${encodeURIComponent(resourceUri)}\n${expiry}`;
}

export function formatToken(resourceUri: string, expiry: number, signature: Buffer, keyName?: string): string {
  const parts = [`sr=${encodeURIComponent(resourceUri)}`, `sig=${encodeURIComponent(signature.toString('base64'))}`, `se=${expiry}`];
  if (keyName !== undefined) parts.push(`skn=${encodeURIComponent(keyName)}`);
  return `SharedAccessSignature ${parts.join('&')}`;
}

/** Makes tokens on demand and reuses one until it is within `renewBeforeS` of expiring. */
export class SasTokenSource {
  private current: SasToken | undefined;

  constructor(
    private readonly store: KeyStore,
    private readonly config: SasConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /** When the current token should be replaced (ms since the epoch). */
  renewAt(token: SasToken): number {
    return token.expiresAt - this.config.renewBeforeS * 1000;
  }

  async token(): Promise<SasToken> {
    if (this.current !== undefined && this.now() < this.renewAt(this.current)) return this.current;
    const expiry = Math.floor(this.now() / 1000) + this.config.ttlS;
    const mac = await this.store.hmac(SAS_KEY, Buffer.from(stringToSign(this.config.resourceUri, expiry)));
    this.current = { token: formatToken(this.config.resourceUri, expiry, mac, this.config.keyName), expiresAt: expiry * 1000 };
    return this.current;
  }
}
