/**
 * The validated, defaults-filled, frozen config (config/guardian.schema.json).
 * Shared by the gateway (which loads it) and the adapters (which receive the part
 * they need through their constructor).
 */
import type { BackoffConfig } from '../core/backoff.js';
import type { SerialFraming } from '../core/serial-timing.js';

export type { BackoffConfig } from '../core/backoff.js';

export type ByteOrder = 'big' | 'little';
export type Table = 'coil' | 'discrete' | 'input' | 'holding';
export type PointType =
  | 'bool' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'
  | 'float32' | 'float64' | 'string' | 'bit';

export interface PointConfig {
  readonly name: string;
  readonly table: Table;
  readonly address: number;
  readonly type: PointType;
  /** string: registers; filled in for every type by the loader (registers or bits spanned). */
  readonly length?: number;
  readonly bit?: number;
  readonly byteOrder: ByteOrder;
  readonly wordOrder: ByteOrder;
  readonly scale: number;
  readonly offset: number;
  readonly deadband: number;
  readonly reportOnChange: boolean;
  readonly heartbeatMs?: number;
  readonly unit?: string;
}

export interface DeviceConfig {
  readonly name: string;
  readonly unitId: number;
  readonly pollIntervalMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly backoff: BackoffConfig;
  readonly maxRegistersPerRequest: number;
  readonly maxBitsPerRequest: number;
  readonly maxGap: number;
  readonly byteOrder: ByteOrder;
  readonly wordOrder: ByteOrder;
  readonly points: readonly PointConfig[];
}

interface BusBase {
  readonly name: string;
  readonly interRequestDelayMs: number;
  readonly reconnect: BackoffConfig;
  readonly devices: readonly DeviceConfig[];
}

export interface SerialBusConfig extends BusBase, SerialFraming {
  readonly type: 'rtu';
  readonly port: string;
}

export interface TcpBusConfig extends BusBase {
  readonly type: 'tcp' | 'rtu-over-tcp';
  readonly host: string;
  readonly port: number;
}

export type BusConfig = SerialBusConfig | TcpBusConfig;

export interface MqttTlsConfig {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
  readonly servername?: string;
  /** Client certificate from the key store (sealed key + installed certificate). */
  readonly identity: boolean;
}

/** Azure IoT Hub SAS token as the MQTT password. */
export interface SasConfig {
  readonly resourceUri: string;
  readonly keyName?: string;
  readonly ttlS: number;
  readonly renewBeforeS: number;
}

export interface IdentityConfig {
  readonly backend: 'auto' | 'tpm' | 'pluton-sim';
  /** `<stateDir>/identity`. */
  readonly dir: string;
  readonly tpm: { readonly tcti: string; readonly ownerAuthFile: string; readonly handleBase: number };
  readonly plutonSim: { readonly secretFile: string };
  readonly attestPcrs: string;
}

export interface MqttConfig {
  readonly url: string;
  readonly protocolVersion: 4 | 5;
  readonly clientId?: string;
  readonly username?: string;
  readonly topicPrefix: string;
  readonly keepaliveS: number;
  readonly connectTimeoutMs: number;
  readonly tls?: MqttTlsConfig;
  readonly sas?: SasConfig;
  readonly reconnect: BackoffConfig;
  readonly queue: { readonly maxInFlight: number };
}

export interface OutboxConfig {
  readonly store: 'sqlite' | 'memory';
  readonly maxBytes: number;
  readonly maxAgeMs: number;
  readonly maxMessages: number;
  readonly commitIntervalMs: number;
  readonly synchronous: 'normal' | 'full';
  readonly drainRatePerS: number;
  readonly policy: 'drop-oldest' | 'stop-polling';
}

/** Cloud-to-device commands (README "Device commands and the write policy"). */
export interface CommandsConfig {
  /** Refuse commands without `ts`. */
  readonly requireTs: boolean;
  /** A command older than this (by its `ts`) is refused. */
  readonly maxAgeMs: number;
  /** A `ts` at most this far in the future is accepted (clock skew). */
  readonly maxFutureMs: number;
  /** Read commands per device in a sliding minute. */
  readonly maxReadsPerMinute: number;
}

export interface GatewayConfig {
  readonly version: 1;
  readonly gateway: {
    readonly id: string;
    readonly stateDir: string;
    readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
    readonly shutdownTimeoutMs: number;
  };
  readonly outbox: OutboxConfig;
  readonly health: { readonly intervalMs: number };
  readonly commands: CommandsConfig;
  readonly firewall: { readonly manifest: string };
  readonly identity: IdentityConfig;
  readonly upstream: { readonly mqtt: MqttConfig };
  readonly buses: readonly BusConfig[];
}
