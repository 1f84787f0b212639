import type { Logger } from 'pino';
import { Backoff } from '../../core/backoff.js';
import type { BusConfig } from '../../config/types.js';
import { GuardianError } from '../../core/errors.js';
import type { LineEvents } from './line-silence.js';
import { closeClient, openClient, type ModbusClient } from './transport.js';

interface Job<T> {
  readonly run: (client: ModbusClient) => Promise<T>;
  readonly resolve: (value: T) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * One arbiter per physical bus: requests to devices on the same RS-485 line (or
 * the same TCP connection) run strictly one after another, in arrival order,
 * never interleaved. The arbiter owns the bus transport: it opens it on first
 * use, and after a transport failure discards it and reopens it no sooner than
 * an exponential, jittered delay; jobs that arrive while the bus is down fail
 * at once with GUARDIAN_E_MODBUS_CONNECT instead of queueing behind it.
 *
 * `interRequestDelayMs` is a user-set minimum between the end of one job and the
 * start of the next. On a serial line the transport also holds every frame until
 * the line has been silent for t3.5 (line-silence.ts), within a job too.
 */
export class BusArbiter {
  private client: ModbusClient | undefined;
  private readonly queue: Job<unknown>[] = [];
  private busy = false;
  private closed = false;
  private retryAt = 0;
  private lastError: GuardianError | undefined;
  private readonly backoff: Backoff;
  private lastRequestEnd = 0;

  constructor(
    private readonly bus: BusConfig,
    private readonly log: Logger,
    private readonly open: (bus: BusConfig, line?: LineEvents) => Promise<ModbusClient> = openClient,
  ) {
    this.backoff = new Backoff(bus.reconnect);
  }

  get isOpen(): boolean {
    return this.client?.isOpen === true;
  }

  /** RTU frames (serial, or RTU over TCP) carry no transaction id: a late answer cannot be told from a timely one. */
  get rtuFraming(): boolean {
    return this.bus.type !== 'tcp';
  }

  exec<T>(run: (client: ModbusClient) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new GuardianError('GUARDIAN_E_MODBUS_CONNECT', `bus ${this.bus.name} is closed`, { bus: this.bus.name }));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve, reject } as Job<unknown>);
      void this.drain();
    });
  }

  /** The transport failed under a request: drop it so the next job reopens it (after backoff). */
  invalidate(reason: GuardianError): void {
    const client = this.client;
    if (client === undefined) return;
    this.client = undefined;
    this.lastError = reason;
    this.retryAt = performance.now() + this.backoff.next();
    this.log.warn({ err: reason, bus: this.bus.name, reopenInMs: this.retryAt - performance.now() }, `bus ${this.bus.name} transport lost`);
    void closeClient(client).then((err) => { if (err !== undefined) this.log.debug({ err, bus: this.bus.name }, 'closing failed transport'); });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) {
      job.reject(new GuardianError('GUARDIAN_E_MODBUS_CONNECT', `bus ${this.bus.name} is closing`, { bus: this.bus.name }));
    }
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      const err = await closeClient(client);
      if (err !== undefined) this.log.debug({ err, bus: this.bus.name }, 'closing bus transport');
    }
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let job = this.queue.shift(); job !== undefined; job = this.queue.shift()) {
        await this.runJob(job);
      }
    } finally {
      this.busy = false;
    }
  }

  private async runJob(job: Job<unknown>): Promise<void> {
    let client: ModbusClient;
    try {
      client = await this.ensureOpen();
    } catch (err) {
      job.reject(err);
      return;
    }
    const gap = this.bus.interRequestDelayMs - (performance.now() - this.lastRequestEnd);
    if (gap > 0) await new Promise((resolve) => setTimeout(resolve, gap));
    try {
      job.resolve(await job.run(client));
    } catch (err) {
      job.reject(err);
    } finally {
      this.lastRequestEnd = performance.now();
    }
  }

  private async ensureOpen(): Promise<ModbusClient> {
    if (this.client !== undefined && this.client.isOpen) return this.client;
    if (this.client !== undefined) this.invalidate(new GuardianError('GUARDIAN_E_MODBUS_CONNECT', `bus ${this.bus.name} transport closed`, { bus: this.bus.name }));
    const wait = this.retryAt - performance.now();
    if (wait > 0) {
      throw new GuardianError('GUARDIAN_E_MODBUS_CONNECT', `bus ${this.bus.name} is down (${this.lastError?.message ?? 'not open'}); reopening in ${Math.ceil(wait)} ms`, { bus: this.bus.name });
    }
    let client: ModbusClient;
    let opened: ModbusClient | undefined;
    try {
      client = await this.open(this.bus, this.lineEvents(() => opened));
      opened = client;
    } catch (err) {
      this.lastError = err instanceof GuardianError ? err : new GuardianError('GUARDIAN_E_MODBUS_CONNECT', String(err), { bus: this.bus.name }, { cause: err });
      const delay = this.backoff.next();
      this.retryAt = performance.now() + delay;
      this.log.warn({ err: this.lastError, bus: this.bus.name, retryInMs: delay }, this.lastError.message);
      throw this.lastError;
    }
    // modbus-serial re-emits transport errors (EIO on a serial port whose device was
    // unplugged) as 'error' events: unheard, one would crash the process; ignored, a port
    // that stays "open" would time out forever. Drop the transport; the next job reopens it.
    client.on('error', (err: unknown) => this.transportError(client, err));
    this.client = client;
    if (this.backoff.attempts > 0) this.log.info({ bus: this.bus.name }, `bus ${this.bus.name} reopened`);
    this.backoff.reset();
    return client;
  }

  /** What the serial line's t3.5 gate reports, for the client `clientOf()` returns once it is open. */
  private lineEvents(clientOf: () => ModbusClient | undefined): LineEvents {
    return {
      busy: ({ silenceMs, waitedMs }) => {
        const err = new GuardianError('GUARDIAN_E_MODBUS_LINE_BUSY', `bus ${this.bus.name}: the line was never silent for ${silenceMs.toFixed(3)} ms (t3.5) in ${Math.round(waitedMs)} ms; the request was not sent`, { bus: this.bus.name, silenceMs, waitedMs });
        this.log.warn({ err }, err.message);
      },
      error: (err) => {
        const client = clientOf();
        if (client !== undefined) this.transportError(client, err);
        else this.log.warn({ err, bus: this.bus.name }, 'writing to a bus transport that is not open failed');
      },
    };
  }

  private transportError(client: ModbusClient, err: unknown): void {
    const message = err instanceof Error ? err.message : String((err as { message?: unknown } | undefined)?.message ?? err);
    const reason = new GuardianError('GUARDIAN_E_MODBUS_CONNECT', `bus ${this.bus.name} transport error: ${message}`, { bus: this.bus.name }, { cause: err });
    if (this.client === client) this.invalidate(reason);
    else this.log.debug({ err: reason, bus: this.bus.name }, 'error on a discarded transport');
  }
}
