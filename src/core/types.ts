/**
 * The seams of the data path (DESIGN.md): readings and messages, the one
 * downstream interface, the one upstream interface, and the component lifecycle.
 */
import type { KeyObject } from 'node:crypto';

/** A point value as published: 64-bit integers beyond 2^53 are decimal strings. */
export type PointValue = number | boolean | string | null;

/** `good`, or `bad:<reason>` (`bad:timeout`, `bad:exception:2`, `bad:decode`, `bad:disconnected`). */
export type Quality = 'good' | `bad:${string}`;

export interface Reading {
  readonly device: string;
  readonly point: string;
  readonly value: PointValue;
  readonly quality: Quality;
  readonly ts: number;
}

/** Raw outcome of reading one point in one poll, before scaling and deadband. */
export interface RawReading {
  readonly point: string;
  readonly value: PointValue;
  readonly quality: Quality;
}

/** Everything one poll of one device produced. */
export interface PollResult {
  readonly device: string;
  /** Epoch ms when the poll completed. */
  readonly ts: number;
  readonly readings: readonly RawReading[];
}

/** A lifecycle-managed part of the daemon. The constructor only stores arguments. */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A device protocol adapter: polls or listens and hands each poll's outcome to its sink. */
export interface DownstreamAdapter extends Component {
  /** The devices this adapter serves (command routing). */
  readonly devices: readonly string[];
  /** Stop (true) or resume (false) reading devices, e.g. while the outbox is full. */
  setPaused(paused: boolean): void;
  /** Per-device counters for health and status. */
  deviceStats(): readonly DeviceStats[];
  /**
   * Run one command on one of its devices; resolves with the reply's `data`.
   * Every write passes the adapter's WriteGate before anything is sent;
   * failures throw GuardianError (the router maps codes to reply statuses).
   */
  command(command: DeviceCommand): Promise<unknown>;
}

/** A command for a device, as the upstream received it (payload already parsed as a JSON object). */
export interface DeviceCommand {
  readonly device: string;
  readonly name: string;
  readonly payload: Readonly<Record<string, unknown>>;
  /** Who asked, for the decision log (e.g. `mqtt:<topic>`). */
  readonly requester: string;
}

/**
 * What a write leaves in the device, decoded the way Guardian reads it: one entry
 * per configured point the written range touches (the point's own codec, scale and
 * offset applied to the registers about to be sent), and one per written address
 * that no point describes (its raw register or coil).
 */
export interface WrittenValue {
  /** The configured point; absent for an address no point describes. */
  readonly point?: string;
  /** The point's span (or the one address). */
  readonly address: number;
  readonly count: number;
  /**
   * The engineering value the device will hold: a number, a decimal string (64-bit
   * beyond 2^53) or a boolean; absent when it cannot be known from the write alone.
   */
  readonly value?: number | string | boolean;
  /**
   * The exact engineering value as plain decimal text (`raw * scale + offset` with
   * the raw register value and no rounding: a float32 is the value the register
   * holds); what the write policy compares with its limits. Absent for booleans,
   * text and addresses no point describes.
   */
  readonly exact?: string;
  /** Why `value` is absent (e.g. the point is only partly written, or is text). */
  readonly unknown?: string;
}

/** One write a command asks for, as it would go on the wire. */
export interface WriteRequest {
  readonly device: string;
  readonly table: 'coil' | 'holding';
  /** The first address written. */
  readonly address: number;
  /** How many coils or registers the request writes (a 32-bit value is 2 registers). */
  readonly count: number;
  /** `point`: a configured point by name; `raw`: registers or coils by address. */
  readonly kind: 'point' | 'raw';
  readonly point?: string;
  /** The registers (holding) or coils exactly as they will be sent, `count` of them. */
  readonly data: readonly number[] | readonly boolean[];
  /** What `data` means once written: value limits are judged on these, never on what the command said. */
  readonly written: readonly WrittenValue[];
  /** Who asked: for the decision log. */
  readonly requester: string;
  /**
   * The same write judged again once its data is known from the bus (a `bit` point's
   * register, read in the write's own bus job): it was already counted against
   * MaxWritesPerMinute when it was first allowed, and is not counted again.
   */
  readonly recheck?: boolean;
}

export type WriteDenyReason = 'no-policy' | 'table' | 'range' | 'value' | 'rate' | 'malformed';

export type WriteDecision =
  | { readonly allowed: true; readonly verify: boolean }
  | { readonly allowed: false; readonly reason: WriteDenyReason; readonly message: string };

/** The write policy as adapters see it: every write asks before it is sent. */
export interface WriteGate {
  decide(request: WriteRequest): WriteDecision;
}

export type PollSink = (result: PollResult) => void;

export interface DeviceStats {
  readonly device: string;
  readonly bus: string;
  readonly polls: number;
  readonly failures: number;
  readonly backedOff: boolean;
  readonly lastError?: string;
}

export type MessageKind = 'telemetry' | 'health' | 'failure';

/** A message bound upstream; each upstream adapter maps kind/device to its own addressing. */
export interface UpstreamMessage {
  readonly kind: MessageKind;
  readonly device?: string;
  /** Telemetry: the device's sequence number (the durable outbox persists the last one). */
  readonly seq?: number;
  /** UTF-8 JSON. */
  readonly payload: string;
}

/** A command as it arrived from the cloud, before it is parsed. */
export interface InboundCommand {
  readonly device: string;
  readonly name: string;
  readonly payload: Buffer;
  /** Where it came from, for the decision log. */
  readonly requester: string;
  /** Delivered from the broker's retained store (not executed: it would run again on every reconnect). */
  readonly retained: boolean;
}

export interface UpstreamEvents {
  connected: () => void;
  disconnected: (reason: string) => void;
  command: (command: InboundCommand) => void;
}

/**
 * Client credentials from the key store, asked for before each connection
 * attempt (adapters never see the key store itself).
 */
export interface UpstreamCredentials {
  /** The TLS client key (unsealed once per process, in memory only) and its certificate chain. */
  tlsClient?(): Promise<{ readonly key: KeyObject; readonly cert: Buffer }>;
  /** An expiring password (an IoT Hub SAS token); the adapter reconnects with a new one at `renewAt` (ms since the epoch). */
  password?(): Promise<{ readonly password: string; readonly renewAt: number }>;
}

/** A cloud link. `publish` resolves when the far end acknowledged (PUBACK / SDK callback). */
export interface UpstreamAdapter extends Component {
  readonly connected: boolean;
  publish(message: UpstreamMessage): Promise<void>;
  /** Answer a command (not through the outbox: a reply nobody waits for any more is worthless). */
  reply(device: string, name: string, body: string): Promise<void>;
  on<E extends keyof UpstreamEvents>(event: E, listener: UpstreamEvents[E]): void;
}
