import { X509Certificate, type KeyObject } from 'node:crypto';
import { lstatSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/types.js';
import { GuardianError, isTransient } from '../core/errors.js';
import type { UpstreamCredentials } from '../core/types.js';
import { DeviceIdentity, SAS_KEY, TLS_KEY } from './identity.js';
import { chooseBackend, createKeyStore } from './backend.js';
import { SasTokenSource } from './sas.js';

/** True when the MQTT upstream authenticates with the key store (tls.identity, sas). */
export function needsKeyStore(config: GatewayConfig): boolean {
  const mqtt = config.upstream.mqtt;
  return mqtt.tls?.identity === true || mqtt.sas !== undefined;
}

/** What the health telemetry says of the upstream's credentials. */
export interface CredentialsStats {
  readonly backend: string | null;
  readonly hardwareBacked: boolean | null;
  /** Credentials that could not be produced (key store not reachable, key missing…) since start. */
  readonly failures: number;
  readonly lastError: string | null;
  /** The TLS client certificate last used: its subject and expiry (ms since the epoch). */
  readonly certificate: { readonly subject: string; readonly notAfter: number } | null;
  /** The SAS token last made: its expiry (ms since the epoch), and how many were made since start. */
  readonly sas: { readonly expiresAt: number; readonly issued: number } | null;
  /** `error` while the key store refuses the credentials for good (a damaged file): see `alarm`. */
  readonly state: 'ok' | 'error';
  /** Why, and since when (ms since the epoch); null when the credentials can be made. */
  readonly alarm: { readonly code: string; readonly message: string; readonly since: number } | null;
}

/** Called once when the key store starts refusing the credentials for good, with its error. */
export type CredentialsAlarm = (err: GuardianError) => void;

/** A certificate this close to its end is warned about at every connection. */
const CERT_WARN_MS = 30 * 86_400_000;

/**
 * The upstream's credentials from the device identity. The key store is opened
 * on first use; a failure (TPM not reachable) is retried on the next connection
 * attempt, which the upstream schedules with backoff.
 *
 * A failure that cannot pass by itself (GUARDIAN_E_KEYSTORE_CORRUPT, a missing
 * key or certificate: every non-transient code) raises an alarm once: one log line,
 * the `onAlarm` callback (the daemon's failure report and health alarm), `state:
 * 'error'` in the stats. Until the key store's files change (their inode, size
 * and change time), each attempt gets the same error without touching the store;
 * once they change, the store is opened again from scratch, and credentials made
 * from it clear the alarm. The files are looked at on every attempt, so damage
 * done after start is found at the next connection, not at the next restart.
 */
export class KeyStoreCredentials implements UpstreamCredentials {
  private identity: Promise<DeviceIdentity> | undefined;
  private tlsKey: Promise<KeyObject> | undefined;
  private sas: SasTokenSource | undefined;
  private store: { backend: string; hardwareBacked: boolean } | undefined;
  private failures = 0;
  private lastError: string | null = null;
  private certificate: CredentialsStats['certificate'] = null;
  private token: { expiresAt: number; issued: number } | null = null;
  /** The key store files' state when they were last read. */
  private seen: string | undefined;
  private alarm: { readonly error: GuardianError; readonly seen: string; readonly since: number } | undefined;

  constructor(
    private readonly config: GatewayConfig,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    private readonly onAlarm: CredentialsAlarm = () => undefined,
    /** Refusals are not logged (run's start check: its caller prints the error once, with its hint). */
    private readonly quiet = false,
  ) {}

  /**
   * The TLS key is unsealed once per process into a KeyObject and kept; the
   * certificate is read at each attempt, so a new one installed for the same
   * key is used at the next connection.
   */
  tlsClient(): Promise<{ key: KeyObject; cert: Buffer }> {
    return this.counted(async () => {
      const identity = await this.open();
      const cert = identity.tlsCertificate();
      this.noteCertificate(cert);
      return { key: await this.unsealedTlsKey(identity), cert };
    });
  }

  private unsealedTlsKey(identity: DeviceIdentity): Promise<KeyObject> {
    this.tlsKey ??= identity.tlsKey().then((key) => {
      this.log.info({ backend: identity.store.backend }, 'TLS client key unsealed (once per process)');
      return key;
    });
    return this.tlsKey.catch((err: unknown) => {
      this.tlsKey = undefined;
      throw err;
    });
  }

  password(): Promise<{ password: string; renewAt: number }> {
    return this.counted(async () => {
      const identity = await this.open();
      const sasConfig = this.config.upstream.mqtt.sas;
      if (sasConfig === undefined) throw new Error('password() without upstream.mqtt.sas');
      this.sas ??= new SasTokenSource(identity.store, sasConfig, this.now);
      const token = await this.sas.token();
      if (this.token?.expiresAt !== token.expiresAt) this.token = { expiresAt: token.expiresAt, issued: (this.token?.issued ?? 0) + 1 };
      return { password: token.token, renewAt: this.sas.renewAt(token) };
    });
  }

  stats(): CredentialsStats {
    return {
      backend: this.store?.backend ?? null, hardwareBacked: this.store?.hardwareBacked ?? null,
      failures: this.failures, lastError: this.lastError, certificate: this.certificate, sas: this.token,
      state: this.alarm === undefined ? 'ok' : 'error',
      alarm: this.alarm === undefined ? null : { code: this.alarm.error.code, message: this.alarm.error.message, since: this.alarm.since },
    };
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
      this.store = { backend: store.backend, hardwareBacked: store.hardwareBacked };
      this.log.info({ backend: store.backend, hardwareBacked: store.hardwareBacked }, 'key store opened');
      return new DeviceIdentity(store, { deviceId: gateway.id, dir: config.dir, log: this.log });
    })();
    return this.identity.catch((err: unknown) => {
      this.identity = undefined;
      throw err;
    });
  }

  private async counted<T>(produce: () => Promise<T>): Promise<T> {
    const seen = this.filesState();
    if (this.alarm !== undefined && this.alarm.seen === seen) {
      this.failures += 1;
      throw this.alarm.error; // nothing changed since: it cannot work, and the store is not asked again
    }
    if (this.seen !== undefined && this.seen !== seen) await this.forget();
    this.seen = seen;
    try {
      const result = await produce();
      if (this.alarm !== undefined) {
        this.log.info({ code: this.alarm.error.code }, 'the key store gives the upstream credentials again; alarm cleared');
        this.alarm = undefined;
      }
      return result;
    } catch (err) {
      this.failures += 1;
      this.lastError = err instanceof Error ? err.message : String(err);
      if (err instanceof GuardianError && !isTransient(err)) this.raise(err, seen);
      throw err;
    }
  }

  private raise(err: GuardianError, seen: string): void {
    const repeated = this.alarm?.error.code === err.code;
    this.alarm = { error: err, seen, since: repeated ? this.alarm!.since : this.now() };
    if (repeated || this.quiet) return;
    this.log.error({ err }, `the key store refuses the upstream credentials (${err.code}); no connection is attempted with them until its files change`);
    this.onAlarm(err);
  }

  /** Drops what was read from the store (the open store, the unsealed key, the SAS source): the files changed. */
  private async forget(): Promise<void> {
    const identity = await this.identity?.catch(() => undefined);
    this.identity = undefined;
    this.tlsKey = undefined;
    this.sas = undefined;
    await identity?.store.close();
  }

  /** Inode, size and change time of every file the credentials come from: a write, rename or chmod changes it. */
  private filesState(): string {
    const { dir, tpm, plutonSim } = this.config.identity;
    let secret: string;
    try {
      secret = chooseBackend(this.config.identity) === 'tpm' ? tpm.ownerAuthFile : plutonSim.secretFile;
    } catch (err) {
      if (!(err instanceof GuardianError)) throw err;
      secret = plutonSim.secretFile; // a damaged root record: store.json below is in the state anyway
    }
    const files = [path.join(dir, 'store.json'), path.join(dir, 'keys', `${TLS_KEY}.json`), path.join(dir, 'keys', `${SAS_KEY}.json`), path.join(dir, 'certs', `${TLS_KEY}.crt`), secret];
    return files.map((file) => {
      try {
        const st = lstatSync(file);
        return `${st.ino}:${st.size}:${st.ctimeMs}:${st.mode}`;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'error';
      }
    }).join('|');
  }

  /** Remembers the leaf's expiry for the health telemetry, and warns when it is near. */
  private noteCertificate(chain: Buffer): void {
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(chain);
    } catch {
      return; // install-cert checked it; the TLS handshake will say what is wrong
    }
    const notAfter = Date.parse(leaf.validTo);
    this.certificate = { subject: leaf.subject.replaceAll('\n', ', '), notAfter };
    const left = notAfter - this.now();
    if (left < CERT_WARN_MS) {
      this.log.warn({ subject: this.certificate.subject, notAfter: new Date(notAfter).toISOString() },
        left <= 0 ? 'the TLS client certificate has expired: install a new one with `guardian identity install-cert`'
          : `the TLS client certificate expires in ${Math.ceil(left / 86_400_000)} days: install a new one with \`guardian identity install-cert\``);
    }
  }
}

/**
 * Opens every key the config's upstream uses, as the daemon will (the same
 * code path): the TLS client key is unsealed and its certificate read
 * (`tls.identity`), a SAS token is made (`sas`); then the store is closed.
 * Throws what the key store says (GUARDIAN_E_KEYSTORE_CORRUPT for a damaged or
 * tampered file, …_MISSING, …_SECRET, TPM errors); does nothing when the
 * upstream uses no key store. Nothing is written.
 */
export async function checkUpstreamCredentials(config: GatewayConfig, log: Logger): Promise<void> {
  if (!needsKeyStore(config)) return;
  const credentials = new KeyStoreCredentials(config, log, Date.now, () => undefined, true);
  try {
    if (config.upstream.mqtt.tls?.identity === true) await credentials.tlsClient();
    if (config.upstream.mqtt.sas !== undefined) await credentials.password();
  } finally {
    await credentials.close();
  }
}
