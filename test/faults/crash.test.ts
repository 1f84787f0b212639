// Failure reports: a deliberately crashing build writes a crash report before it exits; the next
// start sends it on the failure topic and deletes it only once the broker acknowledged it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { redactLine } from '../../src/health/failure-store.js';
import { runCli } from '../fixtures/cli.js';
import { startGateway } from '../fixtures/gateway.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

const body = (m: Message): Record<string, unknown> => JSON.parse(m.payload.toString()) as Record<string, unknown>;

async function setup(t: Test) {
  const dir = await tmpDir(t);
  const broker = await startMosquitto(t);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [1] } } } });
  const config = {
    version: 1,
    gateway: { id: 'gw-crash', stateDir: join(dir, 'state') },
    upstream: { mqtt: { url: broker.url, reconnect: { initialMs: 100, maxMs: 300 } } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'press', unitId: 1, pollIntervalMs: 100, points: [{ name: 'v', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  };
  const configFile = join(dir, 'guardian.yaml');
  writeFileSync(configFile, JSON.stringify(config)); // JSON is YAML: `guardian status` reads the same config
  return { dir, broker, config, configFile };
}

for (const [kind, code] of [
  // the crash comes when the test says so (SIGUSR2, sent once the gateway runs): on a busy machine a
  // timer could fire before the fatal handlers are installed
  ['uncaughtException', "process.on('SIGUSR2', () => setImmediate(() => { throw new TypeError('deliberate crash for the failure-report test'); }));"],
  ['unhandledRejection', "process.on('SIGUSR2', () => setImmediate(() => { void Promise.reject(new RangeError('deliberate rejection for the failure-report test')); }));"],
] as const) {
  t.test(`${kind}: crash report on disk, listed by status, delivered after restart, then deleted`, async (t) => {
    const { dir, broker, config, configFile } = await setup(t);
    const crashModule = join(dir, 'crash.mjs');
    writeFileSync(crashModule, `${code}\n`);
    const crashing = await startGateway(t, config, { nodeArgs: ['--import', crashModule] });
    await crashing.waitForLog((l) => l['msg'] === 'guardian running');
    crashing.child.kill('SIGUSR2');
    t.equal(await crashing.exited, 1, 'the crashing build exits 1');
    t.match(crashing.stderr(), /guardian: crash report written to .*failures\/.*\.json/);
    t.match(crashing.lines.at(-1), { level: 'fatal', kind });

    const listed = await runCli(['status', '--config', configFile, '--json']);
    t.equal(listed.code, 0, listed.stderr);
    const failures = (JSON.parse(listed.stdout) as { failures: Record<string, unknown>[] }).failures;
    t.equal(failures.length, 1);
    const report = failures[0] ?? {};
    t.match(report, { kind, version: /^\d+\.\d+\.\d+$/, error: { message: /deliberate (crash|rejection) for the failure-report test/, stack: /crash\.mjs/ } });
    t.ok(typeof report['uptimeS'] === 'number' && report['uptimeS'] >= 0, 'uptime recorded');
    t.ok((report['recentLog'] as string[]).some((l) => l.includes('guardian running')), 'recent log lines included');
    t.match((await runCli(['status', '--config', configFile])).stdout, new RegExp(`failure reports waiting to be sent: 1\\n  \\S+  ${kind}  `));

    const sub = await subscribe(t, broker.url, 'guardian/gw-crash/failure');
    const restarted = await startGateway(t, config);
    const delivered = body(await sub.waitFor(() => true));
    t.same(delivered, report, 'the report as stored arrives on the failure topic');
    await restarted.waitForLog((l) => l['msg'] === 'failure report delivered');
    t.match((await runCli(['status', '--config', configFile])).stdout, /failure reports waiting to be sent: 0\n/, 'deleted once acknowledged');
    restarted.child.kill('SIGTERM');
    t.equal(await restarted.exited, 0);
  });
}

t.test('SIGKILL: the next start reports an unclean exit', async (t) => {
  const { broker, config } = await setup(t);
  const first = await startGateway(t, config);
  await first.waitForLog((l) => l['msg'] === 'guardian running');
  first.child.kill('SIGKILL');
  await first.exited;
  const sub = await subscribe(t, broker.url, 'guardian/gw-crash/failure');
  const second = await startGateway(t, config);
  const report = body(await sub.waitFor(() => true));
  t.match(report, { kind: 'uncleanExit', error: { message: new RegExp(`previous run \\(pid ${first.child.pid}`) } });
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
  const third = await startGateway(t, config);
  await third.waitForLog((l) => l['msg'] === 'guardian running');
  t.notOk(third.lines.some((l) => l['msg'] === 'the previous run did not stop cleanly; a failure report was written'), 'a clean stop leaves no report');
});

t.test('crash reports carry no secrets: values of secret-looking keys are redacted', async (t) => {
  const line = JSON.stringify({ msg: 'x', password: 'hunter2', nested: { sharedAccessKey: 'abc', deviceKey: 'k', keepaliveS: 30 }, token: 't' });
  t.same(JSON.parse(redactLine(line)), { msg: 'x', password: '[redacted]', nested: { sharedAccessKey: '[redacted]', deviceKey: '[redacted]', keepaliveS: 30 }, token: '[redacted]' });
  t.equal(redactLine('not json'), '[unparsable log line]');
});
