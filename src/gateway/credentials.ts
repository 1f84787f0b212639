import type { Logger } from 'pino';
import type { GatewayConfig } from '../core/config.js';
import type { UpstreamCredentials } from '../core/types.js';
import { DeviceIdentity } from '../identity/identity.js';
import { createKeyStore } from '../identity/open.js';
import { SasTokenSource } from '../identity/sas.js';

/** True when the MQTT upstream authenticates with the key store (tls.identity, sas). */
export function needsKeyStore(config: GatewayConfig): boolean {
  const mqtt = config.upstream.mqtt;
  return mqtt.tls?.identity === true || mqtt.sas !== undefined;
}

/**
 * The upstream's credentials from the device identity. The key store is opened
 * on first use; a failure (TPM not reachable) is retried on the next connection
 * attempt, which the upstream schedules with backoff.
 */
export class KeyStoreCredentials implements UpstreamCredentials {
  private identity: Promise<DeviceIdentity> | undefined;
  private sas: SasTokenSource | undefined;

  constructor(private readonly config: GatewayConfig, private readonly log: Logger) {}

  tlsClient(): Promise<{ key: Buffer; cert: Buffer }> {
    return this.open().then((identity) => identity.tlsCredentials());
  }

  async password(): Promise<{ password: string; renewAt: number }> {
    const identity = await this.open();
    const sasConfig = this.config.upstream.mqtt.sas;
    if (sasConfig === undefined) throw new Error('password() without upstream.mqtt.sas');
    this.sas ??= new SasTokenSource(identity.store, sasConfig);
    const token = await this.sas.token();
    return { password: token.token, renewAt: this.sas.renewAt(token) };
  }

  async close(): Promise<void> {
    // a store that failed to open has nothing to close (the failure was logged by the upstream)
    const identity = await this.identity?.catch(() => undefined);
    await identity?.store.close();
  }

  private open(): Promise<DeviceIdentity> {
    this.identity ??= (async () => {
      const { identity: config, gateway } = this.config;
      const store = createKeyStore(config, this.log);
      await store.open();
      this.log.info({ backend: store.backend, hardwareBacked: store.hardwareBacked }, 'key store opened');
      return new DeviceIdentity(store, { deviceId: gateway.id, dir: config.dir, log: this.log });
    })();
    return this.identity.catch((err: unknown) => {
      this.identity = undefined;
      throw err;
    });
  }
}
