// The in-process guard, attacked: a module loaded into `guardian run` (as a compromised
// dependency would be) tries to send a secret to a loopback listener that is not in the
// manifest through net, tls, http, https, fetch, dgram, DNS, an IP literal, a worker
// thread, child processes, process.binding, its own server sockets and a serial port. Every attempt
// fails with GUARDIAN_E_FIREWALL_DENIED, the listener receives nothing, each refusal is
// logged and reported on the failure topic, and the allowed broker keeps working.
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { codeOf } from '../fixtures/logs.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { freePort, sleep, tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

const EXFILTRATE = join(import.meta.dirname, '..', 'fixtures', 'exfiltrate.mjs');

interface Listener { readonly port: number; readonly sockets: Socket[]; readonly localAddresses: string[]; readonly bytes: () => number; close(): Promise<void> }

async function listener(t: Test, host: string): Promise<Listener> {
  const sockets: Socket[] = [];
  const localAddresses: string[] = [];
  let bytes = 0;
  const server = createServer((s) => { sockets.push(s); localAddresses.push(s.localAddress ?? '?'); s.on('data', (d: Buffer) => { bytes += d.length; }); s.on('error', () => undefined); });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const close = (): Promise<void> => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); });
  t.teardown(close);
  return { port: (server.address() as { port: number }).port, sockets, localAddresses, bytes: () => bytes, close };
}

void t.test('a module inside the gateway cannot get data out; the broker still works', async (t) => {
  const broker = await startMosquitto(t);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [1] } } }, counter: { unit: 1, table: 'holding', address: 0, periodMs: 100 } });
  const loot = await listener(t, '127.0.0.1');
  const legit = await listener(t, '::');
  const udp = createSocket('udp4');
  let datagrams = 0;
  udp.on('message', () => { datagrams += 1; });
  const udpPort = await freePort();
  await new Promise<void>((resolve) => udp.bind(udpPort, '127.0.0.1', resolve));
  t.teardown(() => udp.close());

  const dir = await tmpDir(t);
  const trigger = join(dir, 'go');
  const results = join(dir, 'results.json');
  const sub = await subscribe(t, broker.url, ['guardian/gw-fw/failure', 'guardian/gw-fw/plc-1/telemetry']);
  const config = {
    version: 1,
    gateway: { id: 'gw-fw', shutdownTimeoutMs: 2000 },
    upstream: { mqtt: { url: broker.url, reconnect: { initialMs: 100, maxMs: 500 } } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [{ name: 'plc-1', unitId: 1, pollIntervalMs: 200, points: [{ name: 'counter', table: 'holding', address: 0, type: 'uint16' }] }] }],
  };
  const brokerPort = Number(new URL(broker.url).port);
  const manifest = {
    SchemaVersion: 1, Name: 'exfil-test', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f',
    Capabilities: { AllowedConnections: [`127.0.0.1:${brokerPort}`, `127.0.0.1:${modbus.port}`, `localhost:${legit.port}`] },
  };
  const gw = await startGateway(t, config, {
    manifest,
    nodeArgs: ['--import', EXFILTRATE],
    env: { EXFIL_TRIGGER: trigger, EXFIL_RESULTS: results, EXFIL_TCP_PORT: String(loot.port), EXFIL_UDP_PORT: String(udpPort), EXFIL_LEGIT_PORT: String(legit.port) },
  });
  await gw.waitForLog((l) => l.msg === 'guardian running');
  await sub.waitFor((m) => m.topic.endsWith('/telemetry'));

  writeFileSync(trigger, '');
  for (let i = 0; i < 600 && !existsSync(results); i++) await sleep(100);
  const outcomes = Object.fromEntries((JSON.parse(readFileSync(results, 'utf8')) as { name: string; outcome: string }[]).map((r) => [r.name, r.outcome]));
  t.same(outcomes, {
    'net to an IP literal': 'denied',
    'net to a host name': 'denied',
    'net to an IPv4-mapped IPv6 literal': 'denied',
    'net to a Unix socket': 'denied',
    tls: 'denied',
    http: 'denied',
    https: 'denied',
    fetch: 'denied',
    'udp send': 'denied',
    'udp connect': 'denied',
    'dns lookup': 'denied',
    'dns TXT query': 'denied',
    'dns Resolver': 'denied',
    'worker thread': 'denied',
    'child process (spawn)': 'denied',
    'child process (exec)': 'denied',
    'child process (execFileSync)': 'denied',
    'a trusted helper by bare name, PATH pointing at a look-alike': 'denied',
    'a trusted helper by bare name': 'denied',
    'a look-alike of a trusted helper by its path': 'denied',
    'process.binding(tcp_wrap)': 'denied',
    'listen on a port': 'denied',
    'udp bind a port': 'denied',
    'serial port outside Uart': 'denied',
    'allowed name, by name': 'ok',
    'allowed name, by its IP': 'denied',
    'allowed name, a custom lookup pointing it at the loot port host': 'ok',
    'a subdomain of an allowed name': 'denied',
  }, 'every way out is refused; only the allowed name, by name, connects');

  await sleep(300);
  t.equal(loot.sockets.length, 0, 'the loot listener was never connected to');
  t.equal(loot.bytes(), 0);
  t.equal(datagrams, 0, 'no datagram arrived');
  t.equal(legit.sockets.length, 2, 'the allowed name connected twice (by name, and with its custom lookup ignored)');
  t.ok(legit.localAddresses.every((a) => /^(::ffff:)?127\.0\.0\.1$|^::1$/.test(a)), `the caller's lookup (127.0.0.2) was not used: ${legit.localAddresses.join(', ')}`);

  const denials = gw.lines.filter((l) => codeOf(l) === 'GUARDIAN_E_FIREWALL_DENIED');
  const refused = Object.values(outcomes).filter((o) => o === 'denied').length;
  t.ok(denials.length >= refused, `every refusal is logged (${denials.length} lines for ${refused} refused attempts)`);
  t.match(denials.find((l) => l['target'] === `127.0.0.1:${loot.port}`), { level: 'warn', kind: 'connect', msg: new RegExp(`connection to 127.0.0.1:${loot.port} is not in the manifest's AllowedConnections`), stack: /exfiltrate\.mjs/ }, 'with what was refused and the code that asked');
  for (const kind of ['connect', 'send', 'lookup', 'listen', 'bind', 'serial', 'worker', 'process', 'binding']) {
    t.ok(denials.some((l) => l['kind'] === kind), `a ${kind} refusal is logged`);
  }

  const report = await sub.waitFor((m: Message) => m.topic.endsWith('/failure') && (JSON.parse(m.payload.toString()) as { kind: string }).kind === 'firewallDenied', 30_000);
  t.match(JSON.parse(report.payload.toString()), { kind: 'firewallDenied', error: { code: 'GUARDIAN_E_FIREWALL_DENIED', message: /refused by the manifest firewall/ } }, 'refusals are reported upstream');

  const seen = sub.messages.length;
  await sub.waitFor((m) => sub.messages.indexOf(m) >= seen && m.topic.endsWith('/telemetry'));
  t.pass('telemetry still flows through the allowed broker');
  t.notOk(gw.lines.some((l) => l.level === 50 || l.level === 60), 'no error or fatal log: the outbox checkpoint thread and the rest of the gateway were not refused');
});
