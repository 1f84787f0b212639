import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../core/config.js';
import type { DeviceStats, DownstreamAdapter } from '../core/types.js';
import { ModbusBusAdapter } from '../downstream/modbus/adapter.js';
import { MqttUpstream } from '../upstream/mqtt/adapter.js';
import { Forwarder } from './forwarder.js';
import { MemoryOutbox } from './outbox/memory.js';
import type { Outbox } from './outbox/outbox.js';
import { SqliteOutbox } from './outbox/sqlite.js';
import { Pipeline } from './pipeline.js';
import { Supervisor } from './supervisor.js';

export const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function createOutbox(config: GatewayConfig, log: Logger): Outbox {
  const o = config.outbox;
  if (o.store === 'memory') return new MemoryOutbox(o.maxMessages, log);
  return new SqliteOutbox({
    path: join(config.gateway.stateDir, 'outbox.db'),
    maxBytes: o.maxBytes, maxAgeMs: o.maxAgeMs, commitIntervalMs: o.commitIntervalMs, synchronous: o.synchronous, log,
  });
}

/**
 * Wires one gateway: downstream adapters → pipeline → outbox → forwarder →
 * upstream. Upstream and forwarder form the core; each bus is its own
 * component, so a bus that fails to open is retried alone.
 */
export class Daemon {
  readonly outbox: Outbox;
  readonly upstream: MqttUpstream;
  readonly pipeline: Pipeline;
  private readonly forwarder: Forwarder;
  private readonly core: Supervisor;
  private readonly adapters: Supervisor;
  private readonly buses: DownstreamAdapter[];

  constructor(
    private readonly config: GatewayConfig,
    private readonly log: Logger,
  ) {
    const mqtt = config.upstream.mqtt;
    this.outbox = createOutbox(config, log.child({ component: 'outbox' }));
    this.upstream = new MqttUpstream({ config: mqtt, gatewayId: config.gateway.id, version: VERSION, log: log.child({ component: 'upstream' }) });
    this.forwarder = new Forwarder(this.outbox, this.upstream, mqtt.queue.maxInFlight, log.child({ component: 'forwarder' }));
    this.pipeline = new Pipeline(config.buses.flatMap((b) => b.devices), (message) => this.outbox.append(message));
    this.core = new Supervisor(log);
    this.adapters = new Supervisor(log);
    this.buses = config.buses.map((bus) => new ModbusBusAdapter({ bus, log, sink: (result) => this.pipeline.ingest(result) }));
  }

  async start(): Promise<void> {
    this.log.info({ gateway: this.config.gateway.id, version: VERSION, buses: this.buses.length }, 'guardian starting');
    this.outbox.open();
    this.pipeline.resume(this.outbox.sequences());
    this.core.add(this.upstream);
    this.core.add(this.forwarder);
    for (const bus of this.buses) this.adapters.add(bus);
    await this.core.startAll();
    await this.adapters.startAll();
    this.log.info({ gateway: this.config.gateway.id }, 'guardian running');
  }

  /** Stop polling, finish in-flight publishes (and flush the queue while the link is up), then disconnect. */
  async stop(): Promise<boolean> {
    this.log.info('guardian stopping');
    await this.adapters.stopAll();
    const drained = await this.forwarder.drain(this.config.gateway.shutdownTimeoutMs);
    if (!drained) {
      const { pending, inFlight } = this.outbox.stats();
      this.log.warn({ code: 'GUARDIAN_E_SHUTDOWN_TIMEOUT', pending, inFlight }, 'shutdown left messages unsent');
    }
    await this.core.stopAll();
    await this.outbox.close();
    this.log.info({ drained }, 'guardian stopped');
    return drained;
  }

  deviceStats(): DeviceStats[] {
    return this.buses.flatMap((b) => [...b.deviceStats()]);
  }
}

/**
 * A last resort: an exception nothing caught is logged as fatal (with its
 * stack) and the process exits 1 for systemd to restart it. Crash reports that
 * survive the restart come with the durable outbox.
 */
export function installFatalHandlers(log: Logger): void {
  const die = (kind: string) => (err: unknown): void => {
    log.fatal({ err, code: 'GUARDIAN_E_INTERNAL', kind }, `${kind}: exiting`);
    process.exit(1);
  };
  process.on('uncaughtException', die('uncaught exception'));
  process.on('unhandledRejection', die('unhandled rejection'));
}

/**
 * Run until SIGTERM or SIGINT; resolves with the process exit code (0 after a
 * clean stop). A second signal while stopping exits at once with 1.
 */
export async function runUntilSignal(daemon: Daemon, log: Logger): Promise<number> {
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  await daemon.start();
  const signal = await stopRequested;
  log.info({ signal }, 'signal received');
  const forceExit = (): void => {
    log.error({ code: 'GUARDIAN_E_SHUTDOWN_TIMEOUT' }, 'second signal: exiting without finishing');
    process.exit(1);
  };
  process.once('SIGTERM', forceExit);
  process.once('SIGINT', forceExit);
  await daemon.stop();
  return 0;
}
