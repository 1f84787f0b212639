import type { Logger } from 'pino';
import type { CommandsConfig } from '../core/config.js';
import { GuardianError, toGuardianError, type ErrorCode } from '../core/errors.js';
import type { Component, DownstreamAdapter, InboundCommand, UpstreamAdapter, WriteDecision, WriteGate, WriteRequest } from '../core/types.js';

const MAX_PAYLOAD_BYTES = 16 * 1024;
const MAX_PENDING_PER_DEVICE = 8;
const MAX_TRANSACTION_LENGTH = 128;
/** A command repeated with the same transaction within this time is answered again, not run again (QoS 1 redelivery). */
const REPEAT_WINDOW_MS = 10 * 60_000;
const REPEAT_MAX = 1000;
const RATE_WINDOW_MS = 60_000;

const STATUS: Partial<Record<ErrorCode, number>> = {
  GUARDIAN_E_COMMAND_INVALID: 400,
  GUARDIAN_E_WRITE_DENIED: 403,
  GUARDIAN_E_COMMAND_UNKNOWN: 404,
  GUARDIAN_E_COMMAND_BUSY: 429,
  GUARDIAN_E_COMMAND_RATE: 429,
  GUARDIAN_E_COMMAND_EXPIRED: 408,
  GUARDIAN_E_MODBUS_EXCEPTION: 502,
  GUARDIAN_E_MODBUS_FRAME: 502,
  GUARDIAN_E_WRITE_VERIFY: 502,
  GUARDIAN_E_MODBUS_CONNECT: 503,
  GUARDIAN_E_MODBUS_TIMEOUT: 504,
};

/** The reply status for an error: HTTP-like, as IoT Hub direct methods use (429 for a write or read over the rate limit). */
export function statusOf(err: GuardianError): number {
  if (err.code === 'GUARDIAN_E_WRITE_DENIED' && err.context['reason'] === 'rate') return 429;
  return STATUS[err.code] ?? 500;
}

export interface CommandStats {
  readonly received: number;
  readonly succeeded: number;
  readonly denied: number;
  readonly failed: number;
}

/**
 * The write policy with its decision log: every write a command asks for is
 * logged with who asked, what (device, table, addresses, values) and the
 * decision with its reason, allowed or not.
 */
export class LoggedWriteGate implements WriteGate {
  constructor(
    private readonly gate: WriteGate,
    private readonly log: Logger,
  ) {}

  decide(request: WriteRequest): WriteDecision {
    const decision = this.gate.decide(request);
    const what = {
      requester: request.requester, device: request.device, table: request.table, address: request.address, count: request.count,
      kind: request.kind, ...(request.point === undefined ? {} : { point: request.point }), data: request.data, written: request.written,
    };
    if (decision.allowed) this.log.info({ ...what, decision: 'allowed' }, `write allowed: ${request.device} ${request.table} ${request.address}`);
    else this.log.warn({ ...what, decision: 'denied', code: 'GUARDIAN_E_WRITE_DENIED', reason: decision.reason }, `write denied: ${decision.message}`);
    return decision;
  }
}

interface Envelope {
  readonly transaction: string | null;
  readonly requester: string;
  /** When the sender sent it (epoch ms), and how old it may be when it runs. */
  readonly ts?: number;
  readonly maxAgeMs?: number;
  readonly payload: Record<string, unknown>;
}

interface Reply {
  readonly status: number;
  readonly data?: unknown;
  readonly error?: { readonly code: ErrorCode; readonly message: string };
  readonly transaction: string | null;
}

/**
 * Cloud commands → the device's adapter → a reply. Parses and checks the
 * envelope (`transaction`, `requester`, `ts`, `maxAgeMs`, a JSON object of at most
 * 16 KiB), refuses retained commands (they would run again on every reconnect)
 * and commands past their max age or dated in the future beyond the allowed
 * skew (an old command cannot be replayed later), answers a repeated transaction
 * from its first run instead of writing twice, rate-limits reads per device (writes
 * are rate-limited by the write policy), and caps the commands waiting per device.
 * Every command gets exactly one reply.
 */
export class CommandRouter implements Component {
  readonly name = 'commands';
  private readonly byDevice = new Map<string, DownstreamAdapter>();
  private readonly pending = new Map<string, number>();
  /** `device/name/transaction` → the reply (undefined while it runs), oldest first. */
  private readonly recent = new Map<string, { at: number; reply: Reply | undefined }>();
  /** Per device: when its admitted read commands arrived (monotonic ms), oldest first. */
  private readonly reads = new Map<string, number[]>();
  private listening = false;
  private running = false;
  private counts = { received: 0, succeeded: 0, denied: 0, failed: 0 };

  constructor(
    private readonly upstream: UpstreamAdapter,
    adapters: readonly DownstreamAdapter[],
    private readonly log: Logger,
    private readonly options: CommandsConfig,
    private readonly wallClock: () => number = Date.now,
  ) {
    for (const adapter of adapters) for (const device of adapter.devices) this.byDevice.set(device, adapter);
  }

  async start(): Promise<void> {
    this.running = true;
    if (!this.listening) this.upstream.on('command', (command) => void this.handle(command));
    this.listening = true;
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.resolve();
  }

  stats(): CommandStats {
    return { ...this.counts };
  }

  /** Handle one command; resolves once its reply was sent (or could not be). */
  async handle(command: InboundCommand): Promise<void> {
    if (!this.running) return;
    this.counts.received += 1;
    let transaction: string | null = null;
    let reply: Reply;
    let key: string | undefined;
    try {
      const envelope = this.envelope(command);
      transaction = envelope.transaction;
      if (command.retained) {
        throw new GuardianError('GUARDIAN_E_COMMAND_INVALID', 'a retained command is not executed: it would run again on every reconnect; publish commands with retain false', { device: command.device, command: command.name });
      }
      const repeatKey = transaction === null ? undefined : `${command.device}/${command.name}/${transaction}`;
      const seen = repeatKey === undefined ? undefined : this.recent.get(repeatKey);
      if (seen !== undefined && performance.now() - seen.at < REPEAT_WINDOW_MS) {
        this.log.info({ device: command.device, command: command.name, transaction, requester: command.requester }, seen.reply === undefined ? 'repeated command while the first is running: ignored' : 'repeated command: answered again, not run again');
        if (seen.reply !== undefined) await this.send(command, seen.reply);
        return;
      }
      // an expired command is not remembered: the sender may send it again, freshly dated, with the same transaction
      this.checkFresh(command, envelope);
      if (repeatKey !== undefined) {
        key = repeatKey;
        this.remember(key, undefined);
      }
      reply = { status: 200, data: await this.execute(command, envelope), transaction };
      this.counts.succeeded += 1;
    } catch (caught) {
      const err = toGuardianError(caught);
      const status = statusOf(err);
      if (status === 403 || status === 408 || err.code === 'GUARDIAN_E_COMMAND_RATE' || (status === 429 && err.code === 'GUARDIAN_E_WRITE_DENIED')) this.counts.denied += 1;
      else this.counts.failed += 1;
      this.log.warn({ err, device: command.device, command: command.name, transaction, requester: command.requester, status }, `command ${command.name} for ${command.device} failed: ${err.message}`);
      reply = { status, error: { code: err.code, message: err.message }, transaction };
    }
    if (key !== undefined) this.remember(key, reply);
    await this.send(command, reply);
  }

  private envelope(command: InboundCommand): Envelope {
    const bad = (message: string): GuardianError => new GuardianError('GUARDIAN_E_COMMAND_INVALID', message, { device: command.device, command: command.name });
    if (command.payload.length > MAX_PAYLOAD_BYTES) throw bad(`the payload has ${command.payload.length} bytes; at most ${MAX_PAYLOAD_BYTES}`);
    let doc: unknown;
    try {
      doc = JSON.parse(command.payload.toString('utf8'));
    } catch (err) {
      throw bad(`the payload is not JSON: ${(err as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('the payload must be a JSON object');
    const { transaction, requester, ts, maxAgeMs, ...payload } = doc as Record<string, unknown>;
    if (transaction !== undefined && (typeof transaction !== 'string' || transaction.length === 0 || transaction.length > MAX_TRANSACTION_LENGTH)) {
      throw bad(`transaction must be a string of 1-${MAX_TRANSACTION_LENGTH} characters`);
    }
    if (requester !== undefined && (typeof requester !== 'string' || requester.length > MAX_TRANSACTION_LENGTH)) {
      throw bad(`requester must be a string of at most ${MAX_TRANSACTION_LENGTH} characters`);
    }
    if (ts !== undefined && (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts <= 0)) throw bad('ts must be the epoch milliseconds when the command was sent (a positive integer)');
    if (ts === undefined && this.options.requireTs) throw bad('ts is required: the epoch milliseconds when the command was sent (commands.requireTs)');
    if (maxAgeMs !== undefined && (typeof maxAgeMs !== 'number' || !Number.isSafeInteger(maxAgeMs) || maxAgeMs < 1)) throw bad('maxAgeMs must be a positive integer (milliseconds)');
    if (maxAgeMs !== undefined && ts === undefined) throw bad('maxAgeMs needs ts');
    return {
      transaction: transaction ?? null, requester: requester === undefined ? command.requester : `${command.requester} (says: ${requester})`, payload,
      ...(ts === undefined ? {} : { ts }), ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
    };
  }

  /** A command past its max age, or dated further in the future than the skew allows, is refused (GUARDIAN_E_COMMAND_EXPIRED). */
  private checkFresh(command: InboundCommand, envelope: Envelope): void {
    if (envelope.ts === undefined) return;
    const maxAge = Math.min(envelope.maxAgeMs ?? this.options.maxAgeMs, this.options.maxAgeMs);
    const age = this.wallClock() - envelope.ts;
    const context = { device: command.device, command: command.name, ts: envelope.ts, ageMs: age };
    if (age > maxAge) {
      throw new GuardianError('GUARDIAN_E_COMMAND_EXPIRED', `the command was sent at ${new Date(envelope.ts).toISOString()}, ${age} ms ago; commands older than ${maxAge} ms are not run`, context);
    }
    if (-age > this.options.maxFutureMs) {
      throw new GuardianError('GUARDIAN_E_COMMAND_EXPIRED', `the command is dated ${-age} ms in the future (${new Date(envelope.ts).toISOString()}); at most ${this.options.maxFutureMs} ms of clock skew is allowed: check the sender's clock`, context);
    }
  }

  /** Read commands per device in a sliding minute; refused reads do not count. */
  private admitRead(device: string): void {
    const now = performance.now();
    const times = (this.reads.get(device) ?? []).filter((t) => now - t < RATE_WINDOW_MS);
    this.reads.set(device, times);
    if (times.length >= this.options.maxReadsPerMinute) {
      throw new GuardianError('GUARDIAN_E_COMMAND_RATE', `device '${device}': more than ${this.options.maxReadsPerMinute} reads a minute (commands.maxReadsPerMinute)`, { device });
    }
    times.push(now);
  }

  private async execute(command: InboundCommand, envelope: { requester: string; payload: Record<string, unknown> }): Promise<unknown> {
    const adapter = this.byDevice.get(command.device);
    if (adapter === undefined) throw new GuardianError('GUARDIAN_E_COMMAND_UNKNOWN', `this gateway has no device '${command.device}'`, { device: command.device });
    if (command.name === 'read') this.admitRead(command.device);
    const waiting = this.pending.get(command.device) ?? 0;
    if (waiting >= MAX_PENDING_PER_DEVICE) {
      throw new GuardianError('GUARDIAN_E_COMMAND_BUSY', `${waiting} commands are already waiting for device ${command.device}`, { device: command.device });
    }
    this.pending.set(command.device, waiting + 1);
    try {
      return await adapter.command({ device: command.device, name: command.name, payload: envelope.payload, requester: envelope.requester });
    } finally {
      this.pending.set(command.device, (this.pending.get(command.device) ?? 1) - 1);
    }
  }

  private remember(key: string, reply: Reply | undefined): void {
    this.recent.delete(key);
    this.recent.set(key, { at: performance.now(), reply });
    const now = performance.now();
    for (const [k, v] of this.recent) {
      if (this.recent.size <= REPEAT_MAX && now - v.at < REPEAT_WINDOW_MS) break;
      this.recent.delete(k);
    }
  }

  private async send(command: InboundCommand, reply: Reply): Promise<void> {
    try {
      await this.upstream.reply(command.device, command.name, JSON.stringify(reply));
    } catch (err) {
      this.log.warn({ err, device: command.device, command: command.name, transaction: reply.transaction }, 'could not send the command reply');
    }
  }
}
