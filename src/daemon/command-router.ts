import type { Logger } from 'pino';
import type { CommandsConfig } from '../config/types.js';
import { GuardianError, toGuardianError, type ErrorCode } from '../core/errors.js';
import type { Component, DownstreamAdapter, InboundCommand, UpstreamAdapter, WriteDecision, WriteGate, WriteRequest } from '../core/types.js';
import type { CommandJournal } from './command-journal.js';

const MAX_PAYLOAD_BYTES = 16 * 1024;
const MAX_PENDING_PER_DEVICE = 8;
const MAX_TRANSACTION_LENGTH = 128;
/** Transactions remembered at once; when full, new commands with a transaction are refused (429) rather than forgetting a fresh one. */
export const REPEAT_MAX = 10_000;
/** Error codes after which nothing was done on the device: such a command is not remembered (sending it again runs it once). */
const NOTHING_RAN = new Set<ErrorCode>(['GUARDIAN_E_COMMAND_INVALID', 'GUARDIAN_E_COMMAND_UNKNOWN', 'GUARDIAN_E_WRITE_DENIED', 'GUARDIAN_E_COMMAND_BUSY', 'GUARDIAN_E_COMMAND_RATE']);
const RATE_WINDOW_MS = 60_000;

const STATUS: Partial<Record<ErrorCode, number>> = {
  GUARDIAN_E_COMMAND_INVALID: 400,
  GUARDIAN_E_WRITE_DENIED: 403,
  GUARDIAN_E_COMMAND_UNKNOWN: 404,
  GUARDIAN_E_COMMAND_BUSY: 429,
  GUARDIAN_E_COMMAND_RATE: 429,
  GUARDIAN_E_COMMAND_REPEAT_FULL: 429,
  GUARDIAN_E_COMMAND_EXPIRED: 408,
  GUARDIAN_E_COMMAND_REPLAYED: 409,
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
      ...(request.recheck === true ? { recheck: true } : {}),
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

export interface RouterExtras {
  /** The wall clock (tests step it). */
  readonly wallClock?: () => number;
  /** Transactions held at once (REPEAT_MAX). */
  readonly repeatMax?: number;
  /** Where accepted transactions are kept across restarts; without one they are kept in memory only. */
  readonly journal?: CommandJournal;
}

interface Remembered {
  /** Undefined while the command runs (a running command is never forgotten). */
  readonly reply: Reply | undefined;
  /** Kept until both have passed: the last moment its `ts` is fresh, by the wall and the monotonic clock. */
  readonly untilWall: number;
  readonly untilMono: number;
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
  /** `device/name/transaction` → the reply (undefined while it runs), kept while the command could still be fresh. */
  private readonly recent = new Map<string, Remembered>();
  /** Per device: when its admitted read commands arrived (monotonic ms), oldest first. */
  private readonly reads = new Map<string, number[]>();
  private listening = false;
  private running = false;
  private counts = { received: 0, succeeded: 0, denied: 0, failed: 0 };

  private readonly wallClock: () => number;
  private readonly repeatMax: number;
  private readonly journal: CommandJournal | undefined;
  private journalOpen = false;

  constructor(
    private readonly upstream: UpstreamAdapter,
    adapters: readonly DownstreamAdapter[],
    private readonly log: Logger,
    private readonly options: CommandsConfig,
    extras: RouterExtras = {},
  ) {
    for (const adapter of adapters) for (const device of adapter.devices) this.byDevice.set(device, adapter);
    this.wallClock = extras.wallClock ?? Date.now;
    this.repeatMax = extras.repeatMax ?? REPEAT_MAX;
    this.journal = extras.journal;
  }

  async start(): Promise<void> {
    if (this.journal !== undefined && !this.journalOpen) this.loadJournal();
    this.running = true;
    if (!this.listening) this.upstream.on('command', (command) => void this.handle(command));
    this.listening = true;
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.journal?.close();
    this.journalOpen = false;
    await Promise.resolve();
  }

  /**
   * Transactions an earlier run accepted are still not run again while they could be
   * fresh: answered with their reply, or, when that run stopped before the reply was
   * written, with GUARDIAN_E_COMMAND_REPLAYED (the outcome is unknown here).
   */
  private loadJournal(): void {
    const entries = this.journal!.open(this.wallClock());
    const mono = performance.now();
    for (const entry of entries.values()) {
      const transaction = entry.key.slice(entry.key.lastIndexOf('/') + 1);
      const reply = (entry.reply as Reply | undefined) ?? {
        status: 409, transaction,
        error: { code: 'GUARDIAN_E_COMMAND_REPLAYED', message: 'this transaction was accepted by an earlier run of the gateway, which stopped before it answered; it is not run again (read the device to see its outcome)' },
      };
      this.recent.set(entry.key, { reply, untilWall: entry.untilWall, untilMono: mono });
    }
    if (entries.size > 0) this.log.info({ held: entries.size }, 'command journal: transactions of the last run are remembered until they are stale');
    this.journalOpen = true;
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
    let refusedKey: string | undefined;
    try {
      const envelope = this.envelope(command);
      transaction = envelope.transaction;
      if (command.retained) {
        throw new GuardianError('GUARDIAN_E_COMMAND_INVALID', 'a retained command is not executed: it would run again on every reconnect; publish commands with retain false', { device: command.device, command: command.name });
      }
      const repeatKey = transaction === null ? undefined : `${command.device}/${command.name}/${transaction}`;
      const seen = repeatKey === undefined ? undefined : this.recent.get(repeatKey);
      if (seen !== undefined && !this.expired(seen)) {
        this.log.info({ device: command.device, command: command.name, transaction, requester: command.requester }, seen.reply === undefined ? 'repeated command while the first is running: ignored' : 'repeated command: answered again, not run again');
        if (seen.reply !== undefined) await this.send(command, seen.reply);
        return;
      }
      // an expired or refused command is not remembered: the sender may send it again, freshly dated, with the same transaction
      this.checkFresh(command, envelope);
      const adapter = this.admit(command);
      if (repeatKey !== undefined) {
        this.remember(repeatKey, command, envelope);
        key = repeatKey;
      }
      reply = { status: 200, data: await this.execute(adapter, command, envelope), transaction };
      this.counts.succeeded += 1;
    } catch (caught) {
      const err = toGuardianError(caught);
      const status = statusOf(err);
      if (status === 403 || status === 408 || err.code === 'GUARDIAN_E_COMMAND_RATE' || (status === 429 && err.code === 'GUARDIAN_E_WRITE_DENIED')) this.counts.denied += 1;
      else this.counts.failed += 1;
      // a bit write refused once its register was read cost a bus read: it counts as one
      if (err.code === 'GUARDIAN_E_WRITE_DENIED' && err.context['busRead'] === true) this.countRead(command.device);
      this.log.warn({ err, device: command.device, command: command.name, transaction, requester: command.requester, status }, `command ${command.name} for ${command.device} failed: ${err.message}`);
      reply = { status, error: { code: err.code, message: err.message }, transaction };
      if (key !== undefined && NOTHING_RAN.has(err.code)) {
        this.recent.delete(key);
        refusedKey = key;
        key = undefined;
      }
    }
    if (key !== undefined) {
      const entry = this.recent.get(key);
      if (entry !== undefined) {
        this.recent.set(key, { ...entry, reply });
        this.journalWrite(() => this.journal?.answered(key, entry.untilWall, reply));
      }
    } else if (refusedKey !== undefined) {
      this.journalWrite(() => this.journal?.answered(refusedKey, 0, undefined)); // nothing ran: the next run need not hold it
    }
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
    const maxAge = this.maxAge(envelope);
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
    if (this.readsInWindow(device).length >= this.options.maxReadsPerMinute) {
      throw new GuardianError('GUARDIAN_E_COMMAND_RATE', `device '${device}': more than ${this.options.maxReadsPerMinute} reads a minute (commands.maxReadsPerMinute)`, { device });
    }
    this.countRead(device);
  }

  private readsInWindow(device: string): number[] {
    const now = performance.now();
    const times = (this.reads.get(device) ?? []).filter((t) => now - t < RATE_WINDOW_MS);
    this.reads.set(device, times);
    return times;
  }

  private countRead(device: string): void {
    this.readsInWindow(device).push(performance.now());
  }

  /** The checks before a command runs: a known device, the read rate, the commands waiting. Nothing is remembered for a refusal here. */
  private admit(command: InboundCommand): DownstreamAdapter {
    const adapter = this.byDevice.get(command.device);
    if (adapter === undefined) throw new GuardianError('GUARDIAN_E_COMMAND_UNKNOWN', `this gateway has no device '${command.device}'`, { device: command.device });
    const waiting = this.pending.get(command.device) ?? 0;
    if (waiting >= MAX_PENDING_PER_DEVICE) {
      throw new GuardianError('GUARDIAN_E_COMMAND_BUSY', `${waiting} commands are already waiting for device ${command.device}`, { device: command.device });
    }
    if (command.name === 'read') this.admitRead(command.device);
    return adapter;
  }

  private async execute(adapter: DownstreamAdapter, command: InboundCommand, envelope: { requester: string; payload: Record<string, unknown> }): Promise<unknown> {
    this.pending.set(command.device, (this.pending.get(command.device) ?? 0) + 1);
    try {
      return await adapter.command({ device: command.device, name: command.name, payload: envelope.payload, requester: envelope.requester });
    } finally {
      this.pending.set(command.device, (this.pending.get(command.device) ?? 1) - 1);
    }
  }

  /**
   * Remember a transaction that is about to run, until the same bytes can no longer be
   * fresh: its `ts` plus its max age by the wall clock AND by the monotonic clock (a
   * wall clock set back does not make the entry go early). Fresh entries are never
   * evicted: when REPEAT_MAX are held, the command is refused (GUARDIAN_E_COMMAND_REPEAT_FULL).
   */
  private remember(key: string, command: InboundCommand, envelope: Envelope): void {
    const wall = this.wallClock();
    const mono = performance.now();
    const life = envelope.ts === undefined
      ? this.options.maxAgeMs + this.options.maxFutureMs // no ts: as long as a dated command could still be fresh
      : Math.max(0, envelope.ts + this.maxAge(envelope) - wall);
    if (this.recent.size >= this.repeatMax) {
      for (const [k, v] of this.recent) if (this.expired(v)) this.recent.delete(k);
    }
    if (this.recent.size >= this.repeatMax) {
      throw new GuardianError('GUARDIAN_E_COMMAND_REPEAT_FULL', `${this.recent.size} commands with a transaction are still within their max age; this one is not run (a transaction is never forgotten while it could be replayed)`, { device: command.device, command: command.name, held: this.recent.size });
    }
    // on disk before the command runs: a crash or restart does not open a replay window
    this.journal?.accepted(key, wall + life);
    this.recent.set(key, { reply: undefined, untilWall: wall + life, untilMono: mono + life });
    this.journal?.maybeCompact(() => [...this.recent].map(([k, v]) => ({ key: k, untilWall: v.untilWall, ...(v.reply === undefined ? {} : { reply: v.reply }) })));
  }

  /** The reply line is a convenience (a lost one is answered REPLAYED): a failure to write it is logged, never fatal. */
  private journalWrite(write: () => void): void {
    try {
      write();
    } catch (err) {
      this.log.warn({ err, code: 'GUARDIAN_E_STATE_DISK_FULL' }, 'command journal: could not record a reply');
    }
  }

  private expired(entry: Remembered): boolean {
    return entry.reply !== undefined && this.wallClock() > entry.untilWall && performance.now() > entry.untilMono;
  }

  private maxAge(envelope: Envelope): number {
    return Math.min(envelope.maxAgeMs ?? this.options.maxAgeMs, this.options.maxAgeMs);
  }

  private async send(command: InboundCommand, reply: Reply): Promise<void> {
    try {
      await this.upstream.reply(command.device, command.name, JSON.stringify(reply));
    } catch (err) {
      this.log.warn({ err, device: command.device, command: command.name, transaction: reply.transaction }, 'could not send the command reply');
    }
  }
}
