import type { Logger } from 'pino';
import { GuardianError, toGuardianError, type ErrorCode } from '../core/errors.js';
import type { Component, DownstreamAdapter, InboundCommand, UpstreamAdapter, WriteDecision, WriteGate, WriteRequest } from '../core/types.js';

const MAX_PAYLOAD_BYTES = 16 * 1024;
const MAX_PENDING_PER_DEVICE = 8;
const MAX_TRANSACTION_LENGTH = 128;
/** A command repeated with the same transaction within this time is answered again, not run again (QoS 1 redelivery). */
const REPEAT_WINDOW_MS = 10 * 60_000;
const REPEAT_MAX = 1000;

const STATUS: Partial<Record<ErrorCode, number>> = {
  GUARDIAN_E_COMMAND_INVALID: 400,
  GUARDIAN_E_WRITE_DENIED: 403,
  GUARDIAN_E_COMMAND_UNKNOWN: 404,
  GUARDIAN_E_COMMAND_BUSY: 429,
  GUARDIAN_E_MODBUS_EXCEPTION: 502,
  GUARDIAN_E_MODBUS_FRAME: 502,
  GUARDIAN_E_WRITE_VERIFY: 502,
  GUARDIAN_E_MODBUS_CONNECT: 503,
  GUARDIAN_E_MODBUS_TIMEOUT: 504,
};

/** The reply status for an error: HTTP-like, as IoT Hub direct methods use (429 for a write over the rate limit). */
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

interface Reply {
  readonly status: number;
  readonly data?: unknown;
  readonly error?: { readonly code: ErrorCode; readonly message: string };
  readonly transaction: string | null;
}

/**
 * Cloud commands → the device's adapter → a reply. Parses and checks the
 * envelope (`transaction`, `requester`, a JSON object of at most 16 KiB), refuses
 * retained commands (they would run again on every reconnect), answers a
 * repeated transaction from its first run instead of writing twice, and caps
 * the commands waiting per device. Every command gets exactly one reply.
 */
export class CommandRouter implements Component {
  readonly name = 'commands';
  private readonly byDevice = new Map<string, DownstreamAdapter>();
  private readonly pending = new Map<string, number>();
  /** `device/name/transaction` → the reply (undefined while it runs), oldest first. */
  private readonly recent = new Map<string, { at: number; reply: Reply | undefined }>();
  private listening = false;
  private running = false;
  private counts = { received: 0, succeeded: 0, denied: 0, failed: 0 };

  constructor(
    private readonly upstream: UpstreamAdapter,
    adapters: readonly DownstreamAdapter[],
    private readonly log: Logger,
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
      if (transaction !== null) {
        key = `${command.device}/${command.name}/${transaction}`;
        const seen = this.recent.get(key);
        if (seen !== undefined && performance.now() - seen.at < REPEAT_WINDOW_MS) {
          this.log.info({ device: command.device, command: command.name, transaction, requester: command.requester }, seen.reply === undefined ? 'repeated command while the first is running: ignored' : 'repeated command: answered again, not run again');
          if (seen.reply !== undefined) await this.send(command, seen.reply);
          return;
        }
        this.remember(key, undefined);
      }
      reply = { status: 200, data: await this.execute(command, envelope), transaction };
      this.counts.succeeded += 1;
    } catch (caught) {
      const err = toGuardianError(caught);
      const status = statusOf(err);
      if (status === 403 || (status === 429 && err.code === 'GUARDIAN_E_WRITE_DENIED')) this.counts.denied += 1;
      else this.counts.failed += 1;
      this.log.warn({ err, device: command.device, command: command.name, transaction, requester: command.requester, status }, `command ${command.name} for ${command.device} failed: ${err.message}`);
      reply = { status, error: { code: err.code, message: err.message }, transaction };
    }
    if (key !== undefined) this.remember(key, reply);
    await this.send(command, reply);
  }

  private envelope(command: InboundCommand): { transaction: string | null; requester: string; payload: Record<string, unknown> } {
    const bad = (message: string): GuardianError => new GuardianError('GUARDIAN_E_COMMAND_INVALID', message, { device: command.device, command: command.name });
    if (command.payload.length > MAX_PAYLOAD_BYTES) throw bad(`the payload has ${command.payload.length} bytes; at most ${MAX_PAYLOAD_BYTES}`);
    let doc: unknown;
    try {
      doc = JSON.parse(command.payload.toString('utf8'));
    } catch (err) {
      throw bad(`the payload is not JSON: ${(err as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('the payload must be a JSON object');
    const { transaction, requester, ...payload } = doc as Record<string, unknown>;
    if (transaction !== undefined && (typeof transaction !== 'string' || transaction.length === 0 || transaction.length > MAX_TRANSACTION_LENGTH)) {
      throw bad(`transaction must be a string of 1-${MAX_TRANSACTION_LENGTH} characters`);
    }
    if (requester !== undefined && (typeof requester !== 'string' || requester.length > MAX_TRANSACTION_LENGTH)) {
      throw bad(`requester must be a string of at most ${MAX_TRANSACTION_LENGTH} characters`);
    }
    return { transaction: transaction ?? null, requester: requester === undefined ? command.requester : `${command.requester} (says: ${requester})`, payload };
  }

  private async execute(command: InboundCommand, envelope: { requester: string; payload: Record<string, unknown> }): Promise<unknown> {
    const adapter = this.byDevice.get(command.device);
    if (adapter === undefined) throw new GuardianError('GUARDIAN_E_COMMAND_UNKNOWN', `this gateway has no device '${command.device}'`, { device: command.device });
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
