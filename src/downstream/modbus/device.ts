import type { Logger } from 'pino';
import { Backoff } from '../../core/backoff.js';
import type { DeviceConfig } from '../../config/types.js';
import { GuardianError } from '../../core/errors.js';
import type { DeviceStats, PollSink, RawReading } from '../../core/types.js';
import type { BusArbiter } from './arbiter.js';
import { classify, type ModbusFailure } from './classify.js';
import { applyScale, decodeBits, decodeRegistersAt, isBitTable } from './codec.js';
import { planDevice, type ReadRequest } from './planner.js';
import { readTable } from './transport.js';

/**
 * Polls one device on its interval through the bus arbiter. A poll in which the
 * device did not answer at all (timeout, bad frames, transport down) counts as
 * failed: the next poll then waits an exponential, jittered backoff instead of
 * the interval, so a dead device costs its bus little and never stalls the
 * others. A coalesced request that hits an illegal-address exception is split
 * into one request per point, so one bad address cannot blank its neighbours.
 */
export class DevicePoller {
  private plan: ReadRequest[];
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private paused = false;
  private current: Promise<void> | undefined;
  private nextDue = 0;
  private failing = false;
  private polls = 0;
  private failures = 0;
  private lastError: string | undefined;
  private quietUntil = 0;
  /** request -> the exception code it was last answered with */
  private readonly exceptions = new Map<string, number>();

  constructor(
    private readonly device: DeviceConfig,
    private readonly busName: string,
    private readonly arbiter: BusArbiter,
    private readonly sink: PollSink,
    private readonly log: Logger,
  ) {
    this.plan = planDevice(device);
    this.backoff = new Backoff(device.backoff);
  }

  /** The first poll comes after a random fraction of the interval (at most 1 s), so devices spread out. */
  start(): void {
    this.running = true;
    const delay = Math.floor(Math.random() * Math.min(this.device.pollIntervalMs, 1000));
    this.nextDue = performance.now() + delay;
    this.schedule(delay);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.current;
  }

  stats(): DeviceStats {
    return {
      device: this.device.name, bus: this.busName, polls: this.polls, failures: this.failures, backedOff: this.failing,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
    };
  }

  /** While paused (the outbox is full, policy stop-polling) the device is not read at all. */
  setPaused(paused: boolean): void {
    this.paused = paused;
  }

  private schedule(delay: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      if (this.paused) {
        this.nextDue = performance.now() + this.device.pollIntervalMs;
        this.schedule(this.device.pollIntervalMs);
        return;
      }
      this.current = this.poll().finally(() => { this.current = undefined; });
    }, delay);
  }

  private async poll(): Promise<void> {
    const readings: RawReading[] = [];
    let answered = false;
    let deviceFailure: ModbusFailure | undefined;
    for (let i = 0; i < this.plan.length; i++) {
      const req = this.plan[i] as ReadRequest;
      if (deviceFailure !== undefined) {
        for (const p of req.points) readings.push({ point: p.name, value: null, quality: deviceFailure.quality });
        continue;
      }
      const outcome = await this.request(req);
      const key = `${req.table}:${req.address}:${req.count}`;
      if ('data' in outcome) {
        answered = true;
        this.exceptions.delete(key);
        for (const p of req.points) readings.push(this.decode(p, req, outcome.data));
      } else if (outcome.failure.kind === 'exception') {
        answered = true;
        const { error } = outcome.failure;
        if (error.context['exception'] === 2 && req.points.length > 1) {
          this.split(i, req);
          i -= 1;
          continue;
        }
        // a warning when a request starts failing with an exception (or another one), then debug while it persists
        const code = Number(error.context['exception']);
        if (this.exceptions.get(key) === code) this.log.debug({ err: error }, 'modbus exception');
        else this.log.warn({ err: error, device: this.device.name }, `device ${this.device.name}: ${error.message}`);
        this.exceptions.set(key, code);
        for (const p of req.points) readings.push({ point: p.name, value: null, quality: outcome.failure.quality });
      } else {
        deviceFailure = outcome.failure;
        for (const p of req.points) readings.push({ point: p.name, value: null, quality: outcome.failure.quality });
      }
    }
    this.polls += 1;
    this.sink({ device: this.device.name, ts: Date.now(), readings });
    this.afterPoll(answered ? undefined : deviceFailure);
  }

  private async request(req: ReadRequest): Promise<{ data: readonly number[] | readonly boolean[] } | { failure: ModbusFailure }> {
    const context = { device: this.device.name, bus: this.busName, unitId: this.device.unitId, table: req.table, address: req.address, count: req.count, timeoutMs: this.device.timeoutMs };
    let failure: ModbusFailure | undefined;
    for (let attempt = 0; attempt <= this.device.retries; attempt++) {
      const quiet = this.quietUntil - performance.now();
      if (quiet > 0) await new Promise((resolve) => setTimeout(resolve, quiet));
      try {
        const data = await this.arbiter.exec((client) => {
          client.setID(this.device.unitId);
          client.setTimeout(this.device.timeoutMs);
          return readTable(client, req.table, req.address, req.count);
        });
        return { data };
      } catch (err) {
        failure = classify(err, context);
        if (failure.kind === 'transport' && !(err instanceof GuardianError)) this.arbiter.invalidate(failure.error);
        // RTU has no transaction ids: the answer to a request that timed out (or came
        // garbled) may still arrive, and would pass for the answer to the next request
        // of this device. Send that one no sooner than one more timeout later; what
        // arrives meanwhile is discarded when it is sent (transport.ts).
        if (this.arbiter.rtuFraming && (failure.kind === 'timeout' || failure.kind === 'frame')) this.quietUntil = performance.now() + this.device.timeoutMs;
        if (failure.kind === 'exception' || failure.kind === 'transport') break;
      }
    }
    return { failure: failure as ModbusFailure };
  }

  private decode(point: ReadRequest['points'][number], req: ReadRequest, data: readonly number[] | readonly boolean[]): RawReading {
    try {
      const offset = point.address - req.address;
      const raw = isBitTable(point.table)
        ? decodeBits(point, (data as readonly boolean[]).slice(offset, offset + 1))
        : decodeRegistersAt(point, data as readonly number[], offset);
      return { point: point.name, value: applyScale(point, raw), quality: 'good' };
    } catch (err) {
      this.log.debug({ err, device: this.device.name, point: point.name }, 'decode failed');
      return { point: point.name, value: null, quality: 'bad:decode' };
    }
  }

  private split(index: number, req: ReadRequest): void {
    const single = req.points.map((p) => planDevice({ ...this.device, points: [p] })[0] as ReadRequest);
    this.plan = [...this.plan.slice(0, index), ...single, ...this.plan.slice(index + 1)];
    this.log.info({ device: this.device.name, table: req.table, address: req.address, count: req.count }, 'illegal address inside a coalesced request: reading its points one by one from now on');
  }

  private afterPoll(failure: ModbusFailure | undefined): void {
    const now = performance.now();
    if (failure === undefined) {
      if (this.failing) {
        this.log.info({ code: 'GUARDIAN_E_DEVICE_RECOVERED', device: this.device.name, bus: this.busName, afterFailures: this.backoff.attempts }, `device ${this.device.name} answers again`);
      }
      this.failing = false;
      this.backoff.reset();
      this.lastError = undefined;
      this.nextDue += this.device.pollIntervalMs;
      if (this.nextDue < now) this.nextDue = now; // overran: no burst of catch-up polls
      this.schedule(this.nextDue - now);
      return;
    }
    this.failures += 1;
    this.lastError = `${failure.error.code}: ${failure.error.message}`;
    const delay = Math.max(this.device.pollIntervalMs, this.backoff.next());
    if (!this.failing) {
      // a bus that cannot open is logged once by the bus (arbiter): its devices repeat it at debug only
      const busLevel = failure.error.code === 'GUARDIAN_E_MODBUS_CONNECT';
      this.log[busLevel ? 'debug' : 'warn']({ err: failure.error, device: this.device.name }, `device ${this.device.name}: ${failure.error.message}`);
      const backoff = new GuardianError('GUARDIAN_E_DEVICE_BACKOFF', `device ${this.device.name} backed off`, { device: this.device.name, bus: this.busName, retryInMs: delay });
      this.log.warn({ err: backoff }, backoff.message);
    }
    this.failing = true;
    this.nextDue = now + delay;
    this.schedule(delay);
  }
}
