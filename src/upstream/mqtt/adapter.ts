import type { KeyObject } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { Backoff } from '../../core/backoff.js';
import type { MqttConfig } from '../../config/types.js';
import { GuardianError, isTransient } from '../../core/errors.js';
import { SafeEmitter } from '../../core/events.js';
import { redactUrl } from '../../core/redact.js';
import type { UpstreamAdapter, UpstreamCredentials, UpstreamEvents, UpstreamMessage } from '../../core/types.js';
import { clientContext, readTlsFiles, type TlsMaterial } from './tls.js';
import { Topics } from './topics.js';

export interface MqttUpstreamOptions {
  readonly config: MqttConfig;
  readonly gatewayId: string;
  readonly version: string;
  readonly log: Logger;
  /** Required by `tls.identity` and `sas` in the config. */
  readonly credentials?: UpstreamCredentials;
}

/** What one connection attempt authenticates with. */
interface Secrets {
  readonly tlsClient?: { readonly key: KeyObject; readonly cert: Buffer };
  readonly password?: { readonly password: string; readonly renewAt: number };
}

/** setTimeout's limit; a later renewal is re-armed when this fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Pending {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * MQTT 3.1.1 / 5 upstream with QoS 1. Each connection attempt uses a fresh,
 * single-use client (mqtt.js's own fixed-interval reconnect is off); after a
 * close the next attempt waits an exponential, jittered delay. `online` is
 * published retained on every connect; the retained last will says `offline`.
 */
export class MqttUpstream implements UpstreamAdapter {
  readonly name = 'upstream:mqtt';
  readonly topics: Topics;
  private client: MqttClient | undefined;
  private isConnected = false;
  /** The error of the connection attempt under way (logged once, when it closes). */
  private attemptError: GuardianError | undefined;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private renewing = false;
  /** Changes on every start and stop. */
  private generation = 0;
  private tls: TlsMaterial | undefined;
  /** The TLS context with the key store's client key, made once and reused while the certificate stays the same. */
  private identityContext: { readonly cert: Buffer; readonly context: SecureContext } | undefined;
  private readonly backoff: Backoff;
  private readonly events: SafeEmitter<UpstreamEvents>;
  private readonly pending = new Set<Pending>();
  private connects = 0;

  constructor(private readonly options: MqttUpstreamOptions) {
    this.topics = new Topics(options.config.topicPrefix, options.gatewayId);
    this.backoff = new Backoff(options.config.reconnect);
    this.events = new SafeEmitter<UpstreamEvents>(options.log);
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** Successful connections so far (reconnects = connections - 1). */
  get connections(): number {
    return this.connects;
  }

  on<E extends keyof UpstreamEvents>(event: E, listener: UpstreamEvents[E]): void {
    this.events.on(event, listener);
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.generation += 1;
    if (this.options.config.tls !== undefined) this.tls = await readTlsFiles(this.options.config.tls);
    this.connect();
  }

  publish(message: UpstreamMessage): Promise<void> {
    return this.send(this.topics.for(message), message.payload, false);
  }

  reply(device: string, name: string, body: string): Promise<void> {
    return this.send(this.topics.reply(device, name), body, false);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.generation += 1;
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    const client = this.client;
    if (client === undefined) return;
    if (this.isConnected) {
      const goodbye = JSON.stringify({ state: 'offline', reason: 'shutdown', ts: Date.now(), version: this.options.version });
      await Promise.race([
        this.send(this.topics.state, goodbye, true).catch((err: unknown) => this.options.log.warn({ err }, 'could not publish offline state')),
        new Promise((resolve) => setTimeout(resolve, 2000).unref()),
      ]);
    }
    this.client = undefined;
    this.isConnected = false;
    await client.endAsync(false).catch((err: unknown) => this.options.log.warn({ err }, 'mqtt close failed'));
    this.failPending('stopped');
  }

  private send(topic: string, payload: string, retain: boolean): Promise<void> {
    const client = this.client;
    if (client === undefined || !this.isConnected) {
      return Promise.reject(new GuardianError('GUARDIAN_E_MQTT_DISCONNECTED', 'not connected to the broker', { topic }));
    }
    return new Promise<void>((resolve, reject) => {
      const entry: Pending = { resolve, reject };
      this.pending.add(entry);
      client.publish(topic, payload, { qos: 1, retain }, (err) => {
        if (!this.pending.delete(entry)) return;
        if (err === undefined || err === null) resolve();
        else reject(new GuardianError('GUARDIAN_E_MQTT_PUBLISH', `publish to ${topic} failed: ${err.message}`, { topic }, { cause: err }));
      });
    });
  }

  private clientOptions(secrets: Secrets): IClientOptions {
    const { config, gatewayId, version } = this.options;
    const will = { state: 'offline', reason: 'lost', version };
    const opts: IClientOptions = {
      protocolVersion: config.protocolVersion,
      clientId: config.clientId ?? `guardian-${gatewayId}`,
      clean: true,
      keepalive: config.keepaliveS,
      connectTimeout: config.connectTimeoutMs,
      reconnectPeriod: 0,
      resubscribe: false,
      will: { topic: this.topics.state, payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    };
    if (config.username !== undefined) opts.username = config.username;
    if (secrets.password !== undefined) opts.password = secrets.password.password;
    if (this.tls !== undefined) {
      Object.assign(opts, { ca: this.tls.ca, rejectUnauthorized: true });
      if (this.tls.cert !== undefined) Object.assign(opts, { cert: this.tls.cert, key: this.tls.key });
      if (secrets.tlsClient !== undefined) Object.assign(opts, { secureContext: this.contextFor(this.tls.ca, secrets.tlsClient) });
      if (config.tls?.servername !== undefined) opts.servername = config.tls.servername;
    }
    return opts;
  }

  /** One TLS context per client certificate: the key goes to OpenSSL once, not as a PEM per connection. */
  private contextFor(ca: Buffer, client: { readonly key: KeyObject; readonly cert: Buffer }): SecureContext {
    if (this.identityContext?.cert.equals(client.cert) !== true) {
      this.identityContext = { cert: client.cert, context: clientContext(ca, client.cert, client.key) };
      this.options.log.info('TLS client context made with the key store\'s key');
    }
    return this.identityContext.context;
  }

  /** The key store's credentials for this attempt; a failure is retried with backoff like a refused connection. */
  private async secrets(): Promise<Secrets> {
    const { config, credentials } = this.options;
    const wanted = { tls: config.tls?.identity === true, sas: config.sas !== undefined };
    if ((wanted.tls && credentials?.tlsClient === undefined) || (wanted.sas && credentials?.password === undefined)) {
      throw new GuardianError('GUARDIAN_E_KEYSTORE_MISSING', 'the config asks for key store credentials (tls.identity or sas) but none were given to the MQTT upstream');
    }
    return {
      ...(wanted.tls ? { tlsClient: await credentials!.tlsClient!() } : {}),
      ...(wanted.sas ? { password: await credentials!.password!() } : {}),
    };
  }

  private connect(): void {
    const generation = this.generation;
    // a stop (and maybe a new start) while the key store answered: this attempt is void
    const current = (): boolean => !this.stopping && generation === this.generation;
    this.secrets().then((secrets) => {
      if (!current()) return;
      if (secrets.password !== undefined && this.options.config.username === undefined) {
        // MQTT sends a password only with a user name: mqtt.js would drop the connection before its CONNECT, with no error
        const err = new GuardianError('GUARDIAN_E_CONFIG_INVALID', 'upstream.mqtt.sas needs upstream.mqtt.username (MQTT sends a password only with a user name; IoT Hub: <hub>/<device id>/?api-version=2021-04-12): no connection is attempted', { url: this.shownUrl });
        this.options.log.error({ err }, err.message);
        return;
      }
      this.open(secrets);
    }, (err: unknown) => {
      if (!current()) return;
      if (!(err instanceof GuardianError) || isTransient(err)) {
        const delay = this.backoff.next();
        this.options.log.error({ err, retryInMs: delay }, 'cannot get the upstream credentials from the key store; retrying');
        this.timer = setTimeout(() => this.connect(), delay);
        return;
      }
      // it cannot pass by itself (a damaged key store): the credentials raised their alarm once;
      // look again at the longest backoff, quietly, for the key store to be repaired
      const delay = this.options.config.reconnect.maxMs;
      this.options.log.debug({ code: err.code, retryInMs: delay }, 'upstream credentials still refused by the key store');
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  /** Reconnects with a new password before the current one expires (messages in flight stay in the outbox). */
  private scheduleRenewal(client: MqttClient, renewAt: number): void {
    clearTimeout(this.renewTimer);
    const delay = renewAt - Date.now();
    this.renewTimer = setTimeout(() => {
      if (this.client !== client || this.stopping) return;
      if (Date.now() < renewAt) {
        this.scheduleRenewal(client, renewAt);
        return;
      }
      this.options.log.info({ url: this.shownUrl }, 'renewing the SAS token: reconnecting');
      this.renewing = true;
      client.end(false);
    }, Math.max(0, Math.min(delay, MAX_TIMER_MS)));
    this.renewTimer.unref();
  }

  /** The broker URL as logs show it: the config refuses credentials in it, and this hides any that got in another way. */
  private get shownUrl(): string {
    return redactUrl(this.options.config.url);
  }

  private open(secrets: Secrets): void {
    const { log, config, version } = this.options;
    const client = connect(config.url, this.clientOptions(secrets));
    this.client = client;
    client.on('connect', () => {
      if (this.client !== client) return;
      this.isConnected = true;
      this.connects += 1;
      this.backoff.reset();
      log.info({ url: this.shownUrl, protocolVersion: config.protocolVersion, connections: this.connects }, 'connected to broker');
      if (secrets.password !== undefined) this.scheduleRenewal(client, secrets.password.renewAt);
      const online = JSON.stringify({ state: 'online', ts: Date.now(), version });
      this.send(this.topics.state, online, true).catch((err: unknown) => log.warn({ err }, 'could not publish online state'));
      // clean session: commands sent while Guardian was offline are not executed late
      // MQTT 5 "retain as published": a command published retained keeps its flag even
      // when delivered live, so it is refused then too, not only when replayed later
      client.subscribe(this.topics.commands, { qos: 1, ...(config.protocolVersion === 5 ? { rap: true } : {}) }, (err, granted) => {
        const refused = granted?.some((g) => g.qos === 128) === true;
        if (err !== null || refused) log.warn({ err, topic: this.topics.commands }, 'could not subscribe to the command topics: commands are not received');
        else log.info({ topic: this.topics.commands }, 'receiving commands');
      });
      this.events.emit('connected');
    });
    client.on('message', (topic, payload, packet) => {
      if (this.client !== client) return;
      const cmd = this.topics.parseCommand(topic);
      if (cmd === undefined) return;
      if (packet.retain && payload.length === 0) return; // someone cleared a retained command: not a command
      this.events.emit('command', { ...cmd, payload, requester: `mqtt:${topic}`, retained: packet.retain });
    });
    client.on('error', (cause) => {
      if (this.client !== client) return;
      const err = new GuardianError('GUARDIAN_E_MQTT_CONNECT', `broker ${this.shownUrl}: ${redactUrl(cause.message)}`, { url: this.shownUrl }, { cause });
      // before the broker accepted the connection, the close that follows logs it once, with the retry
      if (this.isConnected) log.warn({ err }, err.message);
      else this.attemptError = err;
    });
    client.on('close', () => this.onClose(client));
  }

  private onClose(client: MqttClient): void {
    if (this.client !== client) return;
    const wasConnected = this.isConnected;
    this.isConnected = false;
    this.client = undefined;
    clearTimeout(this.renewTimer);
    client.end(true);
    this.failPending('connection closed');
    if (this.stopping) return;
    if (this.renewing) {
      this.renewing = false;
      this.events.emit('disconnected', 'renewing credentials');
      this.connect();
      return;
    }
    const delay = this.backoff.next();
    if (wasConnected) {
      const err = new GuardianError('GUARDIAN_E_MQTT_DISCONNECTED', `lost connection to ${this.shownUrl}`, { url: this.shownUrl });
      this.options.log.warn({ err, retryInMs: delay }, err.message);
      this.events.emit('disconnected', 'connection closed');
    } else {
      const err = this.attemptError ?? new GuardianError('GUARDIAN_E_MQTT_CONNECT', `broker ${this.shownUrl}: the connection closed before the broker accepted it`, { url: this.shownUrl });
      this.options.log.warn({ err, retryInMs: delay, attempt: this.backoff.attempts }, 'broker not reachable; retrying');
    }
    this.attemptError = undefined;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private failPending(reason: string): void {
    const entries = [...this.pending];
    this.pending.clear();
    for (const entry of entries) {
      entry.reject(new GuardianError('GUARDIAN_E_MQTT_DISCONNECTED', `publish not confirmed: ${reason}`));
    }
  }
}
