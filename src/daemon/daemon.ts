import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/types.js';
import { GuardianError, hasCode } from '../core/errors.js';
import type { DeviceStats, DownstreamAdapter } from '../core/types.js';
import { ModbusBusAdapter } from '../downstream/modbus/adapter.js';
import type { Manifest } from '../firewall/manifest.js';
import { WritePolicy } from '../firewall/write-policy.js';
import { MqttUpstream } from '../upstream/mqtt/adapter.js';
import { FailureReporter } from '../health/failure-reporter.js';
import { FailureStore, reportId, type FailureReport, type LogRing } from '../health/failure-store.js';
import { Forwarder } from './forwarder.js';
import { ClockWatch } from './clock-watch.js';
import { CommandRouter, LoggedWriteGate } from './command-router.js';
import { CommandJournal } from './command-journal.js';
import { KeyStoreCredentials, needsKeyStore } from '../identity/upstream-credentials.js';
import { HealthReporter } from '../health/reporter.js';
import { MemoryOutbox } from '../outbox/memory.js';
import type { Outbox } from '../outbox/contract.js';
import { SqliteOutbox } from '../outbox/sqlite/store.js';
import { Pipeline } from './pipeline.js';
import { Supervisor } from './supervisor.js';
import { SystemdNotifier } from './systemd-notify.js';

/** After the drain (gateway.shutdownTimeoutMs), how long the rest of the stop may take. */
export const STOP_REST_MS = 5000;

/** Exit codes of `guardian run` after a signal (README "CLI"). */
export const EXIT_STOPPED = 0;
export const EXIT_STOPPED_UNSENT = 3;
export const EXIT_STOP_HUNG = 4;

/** Wait for `work` until the deadline (performance.now() ms); past it, reject naming what did not stop. */
async function within(deadline: number, work: Promise<unknown>, what: () => string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const component = what();
      reject(new GuardianError('GUARDIAN_E_SHUTDOWN_TIMEOUT', `${component} did not stop in time`, { component }));
    }, Math.max(0, deadline - performance.now()));
  });
  try {
    await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function createOutbox(config: GatewayConfig, log: Logger): Outbox {
  const o = config.outbox;
  if (o.store === 'memory') return new MemoryOutbox(o.maxMessages, log);
  return new SqliteOutbox({
    path: join(config.gateway.stateDir, 'outbox.db'),
    maxBytes: o.maxBytes, maxAgeMs: o.maxAgeMs, commitIntervalMs: o.commitIntervalMs, synchronous: o.synchronous, policy: o.policy, log,
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
  readonly failures: FailureStore;
  readonly commands: CommandRouter;
  private readonly forwarder: Forwarder;
  private readonly reporter: FailureReporter;
  private readonly health: HealthReporter;
  private readonly notifier: SystemdNotifier;
  private readonly clock: ClockWatch;
  private readonly core: Supervisor;
  private readonly adapters: Supervisor;
  private readonly buses: DownstreamAdapter[];
  private readonly credentials: KeyStoreCredentials | undefined;

  constructor(
    private readonly config: GatewayConfig,
    manifest: Manifest,
    private readonly log: Logger,
  ) {
    const mqtt = config.upstream.mqtt;
    this.outbox = createOutbox(config, log.child({ component: 'outbox' }));
    this.credentials = needsKeyStore(config) ? new KeyStoreCredentials(config, log.child({ component: 'identity' }), Date.now, (err) => this.credentialsAlarm(err)) : undefined;
    this.upstream = new MqttUpstream({
      config: mqtt, gatewayId: config.gateway.id, version: VERSION, log: log.child({ component: 'upstream' }),
      ...(this.credentials === undefined ? {} : { credentials: this.credentials }),
    });
    this.forwarder = new Forwarder(this.outbox, this.upstream, mqtt.queue.maxInFlight, log.child({ component: 'forwarder' }), config.outbox.drainRatePerS);
    this.pipeline = new Pipeline(config.buses.flatMap((b) => b.devices), (message) => this.outbox.append(message));
    this.failures = new FailureStore(config.gateway.stateDir);
    this.reporter = new FailureReporter(this.failures, this.outbox, this.upstream, log.child({ component: 'failures' }));
    this.clock = new ClockWatch(log.child({ component: 'clock' }));
    this.health = new HealthReporter({
      clock: () => this.clock.stats(),
      identity: () => this.credentials?.stats() ?? null,
      stateDir: config.gateway.stateDir, version: VERSION,
      outbox: () => this.outbox.stats(), devices: () => this.deviceStats(), connections: () => this.upstream.connections,
      emit: (message) => this.outbox.append(message),
    }, config.health.intervalMs, log.child({ component: 'health' }));
    this.notifier = new SystemdNotifier(log.child({ component: 'systemd' }));
    this.core = new Supervisor(log);
    this.adapters = new Supervisor(log);
    const gate = new LoggedWriteGate(WritePolicy.fromManifest(manifest), log.child({ component: 'write-policy' }));
    this.buses = config.buses.map((bus) => new ModbusBusAdapter({ bus, log, gate, sink: (result) => this.pipeline.ingest(result) }));
    this.commands = new CommandRouter(this.upstream, this.buses, log.child({ component: 'commands' }), config.commands, {
      journal: new CommandJournal(join(config.gateway.stateDir, 'commands.journal'), log.child({ component: 'commands' })),
    });
  }

  async start(): Promise<void> {
    this.log.info({ gateway: this.config.gateway.id, version: VERSION, buses: this.buses.length }, 'guardian starting');
    this.outbox.onFullChange((full) => { for (const bus of this.buses) bus.setPaused(full); });
    this.outbox.open();
    this.pipeline.resume(this.outbox.sequences());
    const previous = this.failures.markRunning(process.pid, Date.now());
    if (previous !== undefined) {
      const ts = Date.now();
      this.failures.write({
        id: reportId(ts), ts, kind: 'uncleanExit', version: VERSION, recentLog: [],
        error: { name: 'UncleanExit', message: `the previous run (pid ${previous.pid}, started ${new Date(previous.startedAt).toISOString()}) ended without a clean stop: killed, a fatal signal, or power loss` },
      });
      this.log.warn({ previousPid: previous.pid }, 'the previous run did not stop cleanly; a failure report was written');
    }
    this.core.add(this.commands);
    this.core.add(this.upstream);
    this.core.add(this.forwarder);
    this.core.add(this.reporter);
    this.core.add(this.clock);
    this.core.add(this.health);
    for (const bus of this.buses) this.adapters.add(bus);
    await this.core.startAll();
    await this.adapters.startAll();
    this.log.info({ gateway: this.config.gateway.id }, 'guardian running');
    this.notifier.ready();
  }

  /**
   * Stop polling, finish in-flight publishes (and flush the queue while the link is up), then disconnect.
   * Resolves true when nothing was left unsent. The whole stop is bounded: the drain by
   * gateway.shutdownTimeoutMs, the rest (the buses, the MQTT end, the command journal, the key store)
   * by STOP_REST_MS more; past that it rejects with GUARDIAN_E_SHUTDOWN_TIMEOUT naming the component
   * that did not stop (the outbox is closed first: what it accepted is on disk).
   */
  async stop(): Promise<boolean> {
    this.log.info('guardian stopping');
    this.notifier.stopping();
    const deadline = performance.now() + this.config.gateway.shutdownTimeoutMs + STOP_REST_MS;
    try {
      await within(deadline, this.adapters.stopAll(), () => this.adapters.stoppingNow() ?? 'buses');
      const drained = await this.forwarder.drain(Math.max(0, Math.min(this.config.gateway.shutdownTimeoutMs, deadline - STOP_REST_MS - performance.now())));
      if (!drained) {
        const { pending, inFlight } = this.outbox.stats();
        this.log.warn({ code: 'GUARDIAN_E_SHUTDOWN_TIMEOUT', pending, inFlight }, 'shutdown left messages unsent; they stay in the outbox and are sent at the next start');
      }
      await within(deadline, this.core.stopAll(), () => this.core.stoppingNow() ?? 'core');
      await within(deadline, this.credentials?.close() ?? Promise.resolve(), () => 'identity key store');
      await this.outbox.close();
      this.failures.clearRunning();
      this.log.info({ drained }, 'guardian stopped');
      return drained;
    } catch (err) {
      // A component hung: keep what the outbox accepted (it commits what is staged), leave the
      // running marker (the next start reports an unclean exit), and let the caller exit.
      await this.outbox.close();
      throw err;
    }
  }

  /**
   * The key store refuses the upstream credentials for good (raised once by the
   * credentials until its files change): a failure report, sent when the link is
   * back, and a health report now, whose identity section carries the alarm.
   */
  private credentialsAlarm(err: GuardianError): void {
    const ts = Date.now();
    try {
      this.failures.write({
        id: reportId(ts), ts, kind: err.code === 'GUARDIAN_E_KEYSTORE_CORRUPT' ? 'keystoreCorrupt' : 'credentialsRefused', version: VERSION, uptimeS: Math.round(process.uptime()), pid: process.pid,
        error: { name: err.name, message: err.message, code: err.code }, recentLog: [],
      });
    } catch (writeErr) {
      this.log.error({ err: writeErr }, 'could not write the failure report for the key store alarm');
    }
    this.health.reportNow();
  }

  deviceStats(): DeviceStats[] {
    return this.buses.flatMap((b) => [...b.deviceStats()]);
  }
}

/**
 * A last resort: an exception nothing caught, or a rejection nothing handled,
 * is logged as fatal, written as a crash report (error, stack, version, uptime,
 * the last log lines, redacted) into the state directory, and the process exits 1
 * for systemd to restart it; the report is sent upstream after the restart.
 */
export function installFatalHandlers(log: Logger, stateDir: string, ring?: LogRing): void {
  const store = new FailureStore(stateDir);
  const die = (kind: 'uncaughtException' | 'unhandledRejection') => (cause: unknown): void => {
    log.fatal({ err: cause, code: 'GUARDIAN_E_INTERNAL', kind }, `${kind}: exiting`);
    const err = cause instanceof Error ? cause : new Error(String(cause));
    const code: unknown = (err as Error & { code?: unknown }).code;
    const ts = Date.now();
    const report: FailureReport = {
      id: reportId(ts), ts, kind, version: VERSION, uptimeS: Math.round(process.uptime()), pid: process.pid,
      error: { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}), ...(err.stack === undefined ? {} : { stack: err.stack }) },
      recentLog: ring?.recent() ?? [],
    };
    try {
      const file = store.write(report);
      store.clearRunning(); // reported already: not an unclean exit as well
      process.stderr.write(`guardian: crash report written to ${file}\n`);
    } catch (writeErr) {
      process.stderr.write(`guardian: could not write a crash report: ${String(writeErr)}\n`);
    }
    process.exit(1);
  };
  process.on('uncaughtException', die('uncaughtException'));
  process.on('unhandledRejection', die('unhandledRejection'));
}

/**
 * Run until SIGTERM or SIGINT; resolves with the process exit code: 0 after a clean stop,
 * 3 when messages stayed in the outbox (the link was down or too slow; they are sent at the
 * next start). A stop that hangs past its deadline is logged with the component and exits 4
 * at once; a second signal while stopping exits at once with 1.
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
  try {
    return (await daemon.stop()) ? EXIT_STOPPED : EXIT_STOPPED_UNSENT;
  } catch (err) {
    if (!hasCode(err, 'GUARDIAN_E_SHUTDOWN_TIMEOUT')) throw err;
    // what hung still holds the event loop: exit now (pino flushes its destination on exit)
    log.error({ err, component: err.context['component'] }, `stop did not finish: ${err.message}; exiting`);
    process.exit(EXIT_STOP_HUNG);
  }
}
