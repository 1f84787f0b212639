import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { GuardianError } from '../../core/errors.js';
import { DemoSimulator } from './simulator.js';
import { parseConfig } from '../../config/load.js';
import { Daemon, installFatalHandlers, runUntilSignal } from '../../daemon/daemon.js';
import { createLogger, parseLogFormat } from '../../daemon/logger.js';
import { FailureStore } from '../../health/failure-store.js';
import { armGuard } from '../../daemon/guard-arming.js';
import { loadFirewall } from '../../firewall/config-coverage.js';

const HOST = '127.0.0.1';
const DEFAULT_BROKER_PORT = 1883;
/** Templates, not configs (their `${…}` are filled in here): named so that nobody takes them for one. */
export const DEMO_CONFIG_URL = new URL('../../../config/demo.guardian.yaml.tmpl', import.meta.url);
export const DEMO_MANIFEST_URL = new URL('../../../config/demo.app_manifest.json.tmpl', import.meta.url);

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listen(probe, 0);
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** The embedded MQTT broker (aedes, MQTT 3.1.1) on 127.0.0.1; demo only. */
async function startBroker(requested: number | undefined): Promise<{ port: number; close: () => Promise<void> }> {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  let port: number;
  try {
    port = await listen(server, requested ?? DEFAULT_BROKER_PORT);
  } catch (err) {
    if (requested !== undefined || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
      broker.close();
      throw new GuardianError('GUARDIAN_E_DEMO_PORT', `cannot listen on ${HOST}:${requested ?? DEFAULT_BROKER_PORT}: ${(err as Error).message}`, { port: requested ?? DEFAULT_BROKER_PORT }, { cause: err });
    }
    port = await listen(server, 0); // 1883 is taken (a local Mosquitto?): take a free port instead
  }
  const close = async (): Promise<void> => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise((resolve) => server.close(resolve));
  };
  return { port, close };
}

function parsePort(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new GuardianError('GUARDIAN_E_USAGE', `--port must be a TCP port 1-65535 (got '${raw}')`);
  }
  return port;
}

function fill(url: URL, values: Record<string, string>): string {
  let text = readFileSync(url, 'utf8');
  for (const [key, value] of Object.entries(values)) text = text.replaceAll(`\${${key}}`, value);
  return text;
}

/** Fill the demo config template; the result is validated like any config. `MANIFEST` is where the filled manifest is written. */
export function demoConfigText(ports: { broker: number; simulator: number }, stateDir: string): string {
  return fill(DEMO_CONFIG_URL, { BROKER_PORT: String(ports.broker), SIM_PORT: String(ports.simulator), STATE_DIR: stateDir, MANIFEST: join(stateDir, 'app_manifest.json') });
}

/** Fill the demo manifest template (the ports the broker and the simulator got). */
export function demoManifestText(ports: { broker: number; simulator: number }): string {
  return fill(DEMO_MANIFEST_URL, { BROKER_PORT: String(ports.broker), SIM_PORT: String(ports.simulator) });
}

/**
 * `guardian demo` (what `npm start` runs): the simulated device, the embedded
 * broker and the gateway in one process, on 127.0.0.1 only.
 */
export async function runDemo(portArg: string | undefined, logFormat?: string): Promise<number> {
  const requested = parsePort(portArg);
  const format = parseLogFormat(logFormat);
  const broker = await startBroker(requested);
  const log = createLogger('info', undefined, undefined, format);
  const simulator = new DemoSimulator(HOST, await freePort(), (err) => log.debug({ err, component: 'simulator' }, 'simulator connection error'));
  const stateDir = mkdtempSync(join(tmpdir(), 'guardian-demo-')); // the demo's outbox: its own, removed at exit
  try {
    await simulator.start();
    const ports = { broker: broker.port, simulator: simulator.port };
    const config = parseConfig(demoConfigText(ports, stateDir), 'config/demo.guardian.yaml.tmpl', 'yaml');
    writeFileSync(config.firewall.manifest, demoManifestText(ports));
    const { manifest, policy } = loadFirewall(config);
    const url = `mqtt://${HOST}:${broker.port}`;
    process.stdout.write([
      '',
      'Guardian demo',
      `  simulated device : Guardian demo simulator (Modbus TCP) on ${HOST}:${simulator.port}`,
      `  embedded broker  : ${url}${requested === undefined && broker.port !== DEFAULT_BROKER_PORT ? ` (port ${DEFAULT_BROKER_PORT} was taken)` : ''}`,
      '  watch the data   :',
      `    mosquitto_sub -h ${HOST} -p ${broker.port} -t 'guardian/#' -v`,
      `    npx guardian watch --url ${url}      (no mosquitto-clients needed)`,
      '  change the setpoint (the manifest allows 40-90 °C):',
      `    mosquitto_pub -h ${HOST} -p ${broker.port} -t guardian/demo-gateway/demo-sim-boiler/command/write -m "{\\"point\\":\\"setpoint\\",\\"value\\":70,\\"transaction\\":\\"t1\\",\\"ts\\":$(date +%s%3N)}"`,
      '    the answer comes on guardian/demo-gateway/demo-sim-boiler/reply/write',
      '  stop             : Ctrl-C',
      '',
      '',
    ].join('\n'));
    log.level = config.gateway.logLevel;
    installFatalHandlers(log, stateDir);
    armGuard(policy, log.child({ component: 'firewall' }), new FailureStore(stateDir));
    return await runUntilSignal(new Daemon(config, manifest, log), log);
  } finally {
    await simulator.stop();
    await broker.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
