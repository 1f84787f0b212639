// `guardian run` after SIGTERM: its exit code says whether everything was sent (0), whether
// messages stayed in the outbox (3), or whether a component hung past the stop deadline (4).
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { runCli } from '../fixtures/cli.js';
import { startGateway, type GatewayProcess } from '../fixtures/gateway.js';
import { codeOf, type LogLine } from '../fixtures/logs.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';
import { startProxy } from '../fixtures/proxy.js';

const seqOf = (m: Message): number => (JSON.parse(m.payload.toString()) as { seq: number }).seq;

async function gatewayConfig(t: Test, brokerPort: number, gateway: Record<string, unknown>, mqtt: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [0] } } }, counter: { unit: 1, table: 'holding', address: 0, periodMs: 20 } });
  return {
    version: 1,
    gateway: { id: 'gw-stop', stateDir: join(await tmpDir(t), 'state'), ...gateway },
    upstream: { mqtt: { url: `mqtt://127.0.0.1:${brokerPort}`, reconnect: { initialMs: 100, maxMs: 300 }, ...mqtt } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'press', unitId: 1, pollIntervalMs: 50, points: [{ name: 'n', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  };
}

const shutdownTimeout = (l: LogLine): boolean => codeOf(l) === 'GUARDIAN_E_SHUTDOWN_TIMEOUT';

t.test('SIGTERM with the link cut: exit 3, the unsent count logged, and the next start delivers them', async (t) => {
  const broker = await startMosquitto(t);
  const link = await startProxy(t, broker.port);
  const sub = await subscribe(t, broker.url, 'guardian/gw-stop/press/telemetry');
  const config = await gatewayConfig(t, link.port, { shutdownTimeoutMs: 1000 });
  const first = await startGateway(t, config);
  await sub.waitFor((m) => seqOf(m) >= 5);
  link.down();
  await first.waitForLog((l) => codeOf(l) === 'GUARDIAN_E_MQTT_DISCONNECTED');
  await first.waitForLog((l) => l['msg'] === 'broker not reachable; retrying' && (l['attempt'] as number) >= 3);
  first.child.kill('SIGTERM');
  t.equal(await first.exited, 3, 'stopped, but messages stayed in the outbox');
  const unsent = first.lines.find(shutdownTimeout);
  t.ok(unsent !== undefined, 'GUARDIAN_E_SHUTDOWN_TIMEOUT logged');
  const pending = unsent?.['pending'] as number;
  t.ok(pending > 0, `with the count of unsent messages (${pending})`);
  t.match(first.lines.find((l) => l['msg'] === 'guardian stopped'), { drained: false });

  const distinctBefore = new Set(sub.messages.map(seqOf)).size;
  link.up();
  const second = await startGateway(t, config);
  // the backlog and ten live messages more: every number up to the highest must have arrived
  await sub.waitFor(() => new Set(sub.messages.map(seqOf)).size >= distinctBefore + pending + 10, 30000);
  const seen = new Set(sub.messages.map(seqOf));
  const highest = Math.max(...seen);
  t.same(Array.from({ length: highest }, (_, i) => i + 1).filter((n) => !seen.has(n)), [], `every seq 1..${highest} arrived: nothing lost`);
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0, 'with the link up the stop sends everything and exits 0');
});

/** SIGSTOP the broker: the TCP link stays up, nothing is acknowledged, and the MQTT end waits for acknowledgements. */
async function freezeBroker(t: Test, pid: number | undefined): Promise<void> {
  if (pid === undefined) throw new Error('the broker is not running');
  process.kill(pid, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // already gone: nothing to continue
    }
  });
  await Promise.resolve();
}

/** Outbox depth through `guardian status` (it reads the state directory while the gateway runs). */
async function waiting(configFile: string): Promise<number> {
  const res = await runCli(['status', '--config', configFile, '--json']);
  if (res.code !== 0) throw new Error(`guardian status failed: ${res.stderr}`);
  const outbox = (JSON.parse(res.stdout) as { outbox: { messages: number } | null }).outbox;
  return outbox?.messages ?? 0;
}

t.test('a stop that hangs (the broker frozen with the link up) ends at the deadline: exit 4, naming the component', async (t) => {
  const broker = await startMosquitto(t);
  const sub = await subscribe(t, broker.url, 'guardian/gw-stop/press/telemetry');
  // keepalive far beyond the deadline: only the deadline can end the stop
  const config = await gatewayConfig(t, broker.port, { shutdownTimeoutMs: 500 }, { keepaliveS: 600 });
  const gw: GatewayProcess = await startGateway(t, config);
  await sub.waitFor((m) => seqOf(m) >= 5);
  await sub.client.endAsync();
  await freezeBroker(t, broker.pid());
  // polls go on and their publishes wait for acknowledgements that never come
  while ((await waiting(gw.configFile)) === 0);
  gw.child.kill('SIGTERM');
  t.equal(await gw.exited, 4, 'the stop did not finish: exit 4');
  const unsent = gw.lines.find(shutdownTimeout);
  t.ok(unsent !== undefined && (unsent['pending'] as number) + (unsent['inFlight'] as number) > 0, 'the drain timed out with messages left');
  const hung = gw.lines.find((l) => shutdownTimeout(l) && l['component'] !== undefined);
  t.match(hung, { level: 'error', component: 'upstream:mqtt', msg: /^stop did not finish: upstream:mqtt did not stop in time/ }, 'the component that hung is named');
  t.notOk(gw.lines.some((l) => l['msg'] === 'guardian stopped'), 'no clean stop is claimed');
  t.ok((await waiting(gw.configFile)) > 0, 'what was not acknowledged is still in the outbox');
});
