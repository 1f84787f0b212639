// The in-process guard, attacked: a module loaded into `guardian run` (as a compromised
// dependency would be) tries to send a secret to a loopback listener that is not in the
// manifest through net, tls, http, https, fetch, dgram, DNS, an IP literal, a worker
// thread, child processes, process.binding, its own server sockets and a serial port. Every attempt
// fails with GUARDIAN_E_FIREWALL_DENIED, the listener receives nothing, each refusal is
// logged and reported on the failure topic, and the allowed broker keeps working.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { listeningPorts, startGateway } from '../fixtures/gateway.js';
import { childEnv, GUARDIAN_BIN } from '../fixtures/cli.js';
import { codeOf } from '../fixtures/logs.js';
import { startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { freePort, killChild, sleep, tmpDir } from '../fixtures/ports.js';
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
  // where a caller's dgram lookup would point the allowed name (127.0.0.2, the allowed port)
  const redirected = createSocket('udp4');
  redirected.on('message', () => { datagrams += 1; });
  await new Promise<void>((resolve) => redirected.bind(legit.port, '127.0.0.2', resolve));
  t.teardown(() => redirected.close());

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
  for (let i = 0; i < 1200 && !existsSync(results); i++) await sleep(100);
  if (!existsSync(results)) t.fail(`no results; gateway stderr: ${gw.stderr()}; last lines: ${JSON.stringify(gw.lines.slice(-8))}`);
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
    // item 5: checked once, dialled as checked: the allowed name, never the loot
    'connect([options]) whose getters answer differently on each read': 'ok',
    'connect(options) as a Proxy that answers differently on each read': 'ok',
    // item 6: the constructor's lookup is dropped (the datagram goes to the name's real address) …
    'new dgram.Socket({ lookup }) pointing an allowed name elsewhere': 'ok',
    // … and where the wrapper is skipped, udp_wrap refuses the address the lookup made up
    'the original dgram.Socket constructor with a lookup pointing an allowed name elsewhere': 'refused',
    'dns.setServers': 'denied',
    'Resolver#setServers': 'denied',
    'dns.setServers saved before arming': 'denied',
    'inspector.open': 'denied',
    'process._debugProcess': 'denied',
    // item 10: the environment is pinned: the helper runs, without them (each dropped variable is reported, below)
    'a trusted helper with LD_PRELOAD': 'ok',
    'a trusted helper with NODE_OPTIONS': 'ok',
    'a trusted helper pointed at another NOTIFY_SOCKET': 'denied',
    'a tpm2 tool with --tcti=mssim:host=…': 'denied',
    'a tpm2 tool with -T mssim:host=…': 'denied',
    'a tpm2 tool with bundled -QT…': 'denied',
    'a tpm2 tool with TPM2TOOLS_TCTI=swtpm:host=…': 'denied',
    // item 11: saved before the guard was installed; the native handles refuse (EACCES, as the OS would)
    'net.Socket.prototype.connect saved before arming': 'refused',
    'process.binding(tcp_wrap) saved before arming': 'refused',
    'dns.lookup saved before arming': 'refused',
    'child_process.spawn saved before arming': 'denied',
    'dgram send saved before arming': 'denied',
    // the security review's bypasses (exfiltrate-intrinsics.mjs), attempted after arming
    'Worker: new (Object.getPrototypeOf(Worker))(…)': 'error:Original is not a constructor',
    'Worker: new Worker.prototype.constructor(…)': 'denied',
    'Array.prototype.some → always true': 'denied',
    'Array.prototype[Symbol.iterator] → yields the allowed endpoint': 'denied',
    'Set.prototype.has → false: process.binding(tcp_wrap)': 'denied',
    'Set.prototype.has → true: spawn python3': 'denied',
    'Set.prototype.has → true: an untrusted worker': 'denied',
    'Map.prototype.get → any port': 'denied',
    'String.prototype.toLowerCase → an allowed name': 'denied',
    'String.prototype.slice / indexOf → an allowed address': 'denied',
    'RegExp.prototype.exec → no TCTI found': 'denied',
    'globalThis.String → an allowed address': 'denied',
    'net.isIP (synced into ESM) → not an IP': 'denied',
    'Function.prototype.apply hijacked during an allowed connect': 'no leak (ok)',
    'Function.prototype.call hijacked during a trusted spawn': 'no leak (ok)',
    'Reflect.apply hijacked during an allowed connect': 'no leak (ok)',
    'a hook written back (net.Socket.prototype.connect = …)': "error:Cannot assign to read only property 'connect' of object '#<Socket>'",
    'inspector.Session#connect': 'denied',
    'inspector.Session#connectToMainThread': 'denied',
    'process.dlopen of a copy of the serialport addon': 'denied',
    'DNS TXT of "127.0.0.1%.<secret>.attacker.example" (an IPv4 "zone")': 'denied',
    'systemd-notify --exec': 'denied',
    'childProcess.spawnSync systemd-notify --pid': 'denied',
  }, 'every way out is refused; only the allowed name, by name, connects');

  await sleep(300);
  t.equal(loot.sockets.length, 0, 'the loot listener was never connected to');
  t.equal(loot.bytes(), 0);
  t.equal(datagrams, 0, 'no datagram arrived');
  t.equal(legit.sockets.length, 6, 'the allowed name connected six times (by name, with its custom lookup ignored, twice as the two-faced options first answered, and during the apply and Reflect.apply hijacks)');
  t.ok(legit.localAddresses.every((a) => /^(::ffff:)?127\.0\.0\.1$|^::1$/.test(a)), `the caller's lookup (127.0.0.2) was not used: ${legit.localAddresses.join(', ')}`);

  const denials = gw.lines.filter((l) => codeOf(l) === 'GUARDIAN_E_FIREWALL_DENIED');
  const refused = Object.values(outcomes).filter((o) => o === 'denied' || o === 'refused').length + 2; // + the two dropped variables
  t.ok(denials.length >= refused, `every refusal is logged (${denials.length} lines for ${refused} refused attempts)`);
  t.match(denials.find((l) => l['target'] === `127.0.0.1:${loot.port}`), { level: 'warn', kind: 'connect', msg: new RegExp(`connection to 127.0.0.1:${loot.port} is not in the manifest's AllowedConnections`), stack: /exfiltrate\.mjs/ }, 'with what was refused and the code that asked');
  for (const kind of ['connect', 'send', 'lookup', 'resolver', 'listen', 'bind', 'serial', 'worker', 'process', 'binding', 'inspector', 'addon']) {
    t.ok(denials.some((l) => l['kind'] === kind), `a ${kind} refusal is logged`);
  }
  for (const [kind, target] of [['connect', `127.0.0.1:${loot.port}`], ['send', `127.0.0.2:${legit.port}`], ['lookup', 'the-device-key.exfil.example'], ['process', '/bin/sh'], ['process', '/usr/bin/systemd-notify:LD_PRELOAD'], ['process', '/usr/bin/systemd-notify:NODE_OPTIONS']]) {
    t.ok(denials.some((l) => l['layer'] === 'handle' && l['kind'] === kind && l['target'] === target), `the native handle layer logged its ${kind} refusal of ${target}`);
  }

  // item 8: SIGUSR1 would start the inspector on 127.0.0.1:9229; the guard's listener takes it instead
  const before = denials.length;
  process.kill(gw.child.pid ?? 0, 'SIGUSR1');
  await gw.waitForLog((l) => codeOf(l) === 'GUARDIAN_E_FIREWALL_DENIED' && l['kind'] === 'inspector' && l['target'] === 'SIGUSR1');
  t.ok(gw.lines.filter((l) => codeOf(l) === 'GUARDIAN_E_FIREWALL_DENIED').length > before, 'SIGUSR1 is logged as a refusal');
  t.same(listeningPorts(gw.child.pid ?? 0), [], 'and no debugger (nor anything else) listens');
  t.equal(gw.child.exitCode, null, 'the gateway still runs');

  const report = await sub.waitFor((m: Message) => m.topic.endsWith('/failure') && (JSON.parse(m.payload.toString()) as { kind: string }).kind === 'firewallDenied', 30_000);
  t.match(JSON.parse(report.payload.toString()), { kind: 'firewallDenied', error: { code: 'GUARDIAN_E_FIREWALL_DENIED', message: /refused by the manifest firewall/ } }, 'refusals are reported upstream');

  const seen = sub.messages.length;
  await sub.waitFor((m) => sub.messages.indexOf(m) >= seen && m.topic.endsWith('/telemetry'));
  t.pass('telemetry still flows through the allowed broker');
  t.notOk(gw.lines.some((l) => l.level === 50 || l.level === 60), 'no error or fatal log: the outbox checkpoint thread and the rest of the gateway were not refused');
});

void t.test('code preloaded before the firewall (--import, NODE_OPTIONS --require): guardian run refuses to start', async (t) => {
  // Preloaded code runs before Guardian does, so nothing in the process can stop what it does
  // at once (the OS layer holds then; see the README). What Guardian can do: not start, so the
  // daemon never loads its config, keys or devices next to that code.
  const dir = await tmpDir(t);
  const config = join(dir, 'guardian.yaml');
  writeFileSync(config, 'version: 1\n');
  const env = { EXFIL_TRIGGER: join(dir, 'go'), EXFIL_RESULTS: join(dir, 'results.json'), EXFIL_TCP_PORT: '9', EXFIL_UDP_PORT: '9', EXFIL_LEGIT_PORT: '9' };
  const run = (nodeArgs: string[], extra: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, GUARDIAN_BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...childEnv(env), ...extra } });
    t.teardown(() => killChild(child));
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  const imported = await run(['--import', EXFILTRATE], {});
  t.equal(imported.code, 1, 'exit 1');
  t.match(imported.stderr, /GUARDIAN_E_PRELOAD: guardian run does not start with code preloaded before its firewall \(--import/, 'with the stable code and the flag that preloads');
  t.notMatch(imported.stderr, /GUARDIAN_E_CONFIG/, 'before the config is even read (it is invalid)');
  t.equal(imported.stdout, '', 'the daemon never started (no log line)');
  const required = join(dir, 'early.cjs');
  // a dependency-like module that keeps the original connect for later
  writeFileSync(required, "globalThis.savedConnect = require('node:net').Socket.prototype.connect;\n");
  const viaEnv = await run([], { NODE_OPTIONS: `--require ${required}` });
  t.equal(viaEnv.code, 1, 'NODE_OPTIONS --require: exit 1');
  t.match(viaEnv.stderr, /GUARDIAN_E_PRELOAD: .*NODE_OPTIONS --require/, 'NODE_OPTIONS is read too');
  t.equal(viaEnv.stdout, '', 'the daemon never started');
});
