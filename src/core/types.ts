/**
 * The seams of the data path (DESIGN.md): readings and messages, the one
 * downstream interface, the one upstream interface, and the component lifecycle.
 */

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
  /** Stop (true) or resume (false) reading devices, e.g. while the outbox is full. */
  setPaused(paused: boolean): void;
  /** Per-device counters for health and status. */
  deviceStats(): readonly DeviceStats[];
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

export interface UpstreamEvents {
  connected: () => void;
  disconnected: (reason: string) => void;
}

/** A cloud link. `publish` resolves when the far end acknowledged (PUBACK / SDK callback). */
export interface UpstreamAdapter extends Component {
  readonly connected: boolean;
  publish(message: UpstreamMessage): Promise<void>;
  on<E extends keyof UpstreamEvents>(event: E, listener: UpstreamEvents[E]): void;
}
