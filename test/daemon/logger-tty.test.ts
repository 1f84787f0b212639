// `guardian run` as a person sees it: the built CLI on a real pseudo-terminal (util-linux
// `script`) prints pretty lines; with --log-format json, under journald (JOURNAL_STREAM) or
// without a terminal it prints the JSON lines as before. Real refused connections (closed
// ports), a real DNS failure (.invalid), a real denial by the armed guard and a real crash.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { manifestFor } from '../../src/firewall/config-coverage.js';
import { runCli } from '../fixtures/cli.js';
import { startGateway } from '../fixtures/gateway.js';
import { freePort, tmpDir } from '../fixtures/ports.js';
import { guardianInPty } from '../fixtures/pty.js';

const ANSI = /\x1b\[[0-9;]*m/;
/** An event line of the pretty format: `[date time] LEVEL: …`. */
const EVENT = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): /;
const count = (text: string, part: string): number => text.split(part).length - 1;

/** A config whose broker does not resolve (.invalid) and whose Modbus bus is a closed port. */
async function brokenUplinkConfig(t: Test): Promise<{ dir: string; config: Record<string, unknown>; busPort: number }> {
  const dir = await tmpDir(t, 'guardian-tty-');
  const busPort = await freePort(); // free a moment ago: nothing listens, connects are refused
  const config = {
    version: 1,
    gateway: { id: 'gw-tty', stateDir: join(dir, 'state'), shutdownTimeoutMs: 1000 },
    upstream: { mqtt: { url: 'mqtt://broker.invalid:1883', reconnect: { initialMs: 100, maxMs: 300 } } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: busPort, devices: [
      { name: 'press', unitId: 1, pollIntervalMs: 200, points: [{ name: 'v', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  };
  return { dir, config, busPort };
}

/** The config file and a manifest that allows exactly what it uses; returns the config path. */
function writeFiles(dir: string, config: Record<string, unknown>): string {
  const file = join(dir, 'guardian.yaml');
  const full = { ...config, firewall: { manifest: join(dir, 'app_manifest.json') } };
  writeFileSync(file, stringify(full));
  writeFileSync(join(dir, 'app_manifest.json'), JSON.stringify(manifestFor(parseConfig(stringify(full), file)), null, 2));
  return file;
}

const DNS_LINE = /GUARDIAN_E_MQTT_CONNECT/;
const REFUSED_LINE = /GUARDIAN_E_MODBUS_CONNECT/;

t.test('at a terminal (NO_COLOR): pretty single lines, the code, each cause once, no JSON, no colour, no stack', async (t) => {
  const { dir, config, busPort } = await brokenUplinkConfig(t);
  const gw = guardianInPty(t, ['run', '--config', writeFiles(dir, config)], { NO_COLOR: '1', FORCE_COLOR: undefined, TERM: 'xterm-256color', JOURNAL_STREAM: undefined });
  await gw.waitForLine(/guardian running/);
  const dns = await gw.waitForLine(DNS_LINE);
  t.match(dns, EVENT);
  t.match(dns, /WARN: \(upstream\) broker not reachable; retrying: broker mqtt:\/\/broker\.invalid:1883: getaddrinfo (ENOTFOUND|EAI_AGAIN) broker\.invalid GUARDIAN_E_MQTT_CONNECT retryInMs=\d+ attempt=1$/);
  t.equal(count(dns, 'broker.invalid'), 2, 'the URL once, the DNS failure once');
  const refused = await gw.waitForLine(REFUSED_LINE);
  t.match(refused, new RegExp(`connect ECONNREFUSED 127\\.0\\.0\\.1:${busPort} GUARDIAN_E_MODBUS_CONNECT`));
  t.equal(count(refused, `ECONNREFUSED 127.0.0.1:${busPort}`), 1, 'the refusal once');
  // the broker never answered: what was queued stays in the outbox (exit 3) unless nothing was
  const code = await gw.stop();
  t.ok(code === 0 || code === 3, `SIGTERM: a clean stop (exit ${String(code)}: 0, or 3 with messages kept for the next start)`);
  const lines = gw.text().split('\n').filter((l) => l !== '');
  t.ok(lines.length >= 4, gw.text());
  t.same(lines.filter((l) => !EVENT.test(l)), [], 'every line is one event: no JSON, no continuation (no stack) lines');
  t.notOk(lines.some((l) => l.includes('{')), 'no JSON braces');
  t.notMatch(gw.text(), ANSI, 'NO_COLOR: no ANSI escapes');
  t.same(lines.filter((l) => /WARN: device \S+: cannot open/.test(l)), [], 'a dead bus is logged by the bus, not again by each device');
  t.notMatch(gw.text(), /in \d+\.\d+ ms/, 'durations are whole milliseconds');
  const uplink = lines.filter((l) => DNS_LINE.test(l));
  t.same(uplink.map((l) => /attempt=(\d+)$/.exec(l)?.[1]), uplink.map((_, i) => String(i + 1)), 'the uplink failure once per attempt: one retry line each, no separate error line');
});

t.test('at a terminal with colours (TERM set, no NO_COLOR): ANSI colours', async (t) => {
  const { dir, config } = await brokenUplinkConfig(t);
  const gw = guardianInPty(t, ['run', '--config', writeFiles(dir, config)], { NO_COLOR: undefined, FORCE_COLOR: undefined, TERM: 'xterm-256color', JOURNAL_STREAM: undefined });
  const line = await gw.waitForLine(DNS_LINE);
  await gw.stop();
  t.match(line, ANSI, JSON.stringify(line));
  t.match(line.replace(/\x1b\[[0-9;]*m/g, ''), /WARN: \(upstream\) broker not reachable; retrying: broker mqtt:\/\/broker\.invalid:1883: getaddrinfo \S+ broker\.invalid GUARDIAN_E_MQTT_CONNECT retryInMs=\d+ attempt=1$/);
});

/** JSON lines of a terminal session: every line parses, and the uplink error says its cause once without a stack. */
async function expectJson(t: Test, env: Record<string, string | undefined>, extraArgs: string[]): Promise<void> {
  const { dir, config } = await brokenUplinkConfig(t);
  const gw = guardianInPty(t, ['run', '--config', writeFiles(dir, config), ...extraArgs], { NO_COLOR: undefined, TERM: 'xterm-256color', ...env });
  const text = await gw.waitForLine(DNS_LINE);
  await gw.stop();
  const line = JSON.parse(text) as { level: string; err: Record<string, unknown> };
  t.equal(line.level, 'warn');
  t.equal(line.err['code'], 'GUARDIAN_E_MQTT_CONNECT');
  t.equal(count(String(line.err['message']), 'broker.invalid'), 2, String(line.err['message']));
  t.notOk('stack' in line.err, 'no stack for an expected error');
  const lines = gw.text().split('\n').filter((l) => l.trim() !== '');
  for (const l of lines) t.doesNotThrow(() => { JSON.parse(l); }, `a JSON line: ${l.slice(0, 80)}`);
}

t.test('--log-format json at a terminal: JSON lines', (t) => expectJson(t, { JOURNAL_STREAM: undefined }, ['--log-format', 'json']));

t.test('JOURNAL_STREAM set (systemd), even on a terminal: JSON lines', (t) => expectJson(t, { JOURNAL_STREAM: '8:123456' }, []));

t.test('not a terminal: JSON lines, the cause once, no stack for the expected', async (t) => {
  const { config, busPort } = await brokenUplinkConfig(t);
  const gw = await startGateway(t, config); // stdout is a pipe; the fixture parses every line as JSON
  const dns = await gw.waitForLog((l) => (l['err'] as Record<string, unknown> | undefined)?.['code'] === 'GUARDIAN_E_MQTT_CONNECT');
  const refused = await gw.waitForLog((l) => (l['err'] as Record<string, unknown> | undefined)?.['code'] === 'GUARDIAN_E_MODBUS_CONNECT');
  const err = (l: Record<string, unknown>): Record<string, unknown> => l['err'] as Record<string, unknown>;
  t.equal(count(String(err(refused)['message']), `ECONNREFUSED 127.0.0.1:${busPort}`), 1, String(err(refused)['message']));
  t.equal(count(String(err(dns)['message']), 'broker.invalid'), 2, String(err(dns)['message']));
  t.notOk('stack' in err(dns) || 'stack' in err(refused), 'no stacks');
});

t.test('pretty at a terminal: the armed guard logs its refusal; a crash logs its stack', async (t) => {
  const { dir, config } = await brokenUplinkConfig(t);
  const loot = await freePort();
  const deny = join(dir, 'deny'), crash = join(dir, 'crash');
  const module = join(dir, 'misbehave.mjs');
  // a "dependency" that waits for the test's go (the guard is armed by then), connects where the
  // manifest does not allow, and later throws a bug
  writeFileSync(module, [
    "import { existsSync } from 'node:fs';",
    "import { connect } from 'node:net';",
    'const timer = setInterval(() => {',
    `  if (existsSync(${JSON.stringify(crash)})) { clearInterval(timer); throw new TypeError('deliberate bug for the log test'); }`,
    `  if (existsSync(${JSON.stringify(deny)}) && !globalThis.tried) { globalThis.tried = true; try { connect(${loot}, '127.0.0.1').on('error', () => undefined); } catch { /* refused synchronously: logged by the guard */ } }`,
    '}, 50);',
    '',
  ].join('\n'));
  const gw = guardianInPty(t, ['run', '--config', writeFiles(dir, config)], { NO_COLOR: '1', JOURNAL_STREAM: undefined }, ['--import', module]);
  await gw.waitForLine(/guardian running/);
  writeFileSync(deny, '');
  const denied = await gw.waitForLine(/GUARDIAN_E_FIREWALL_DENIED/);
  t.match(denied, EVENT);
  t.match(denied, new RegExp(`127\\.0\\.0\\.1:${loot}`));
  writeFileSync(crash, '');
  const fatal = await gw.waitForLine(/FATAL: /);
  t.match(fatal, /FATAL: uncaughtException: exiting: deliberate bug for the log test GUARDIAN_E_INTERNAL/);
  t.equal(await gw.exited, 1, 'the crash exits 1');
  const after = gw.text().split('\n');
  const at = after.indexOf(fatal);
  t.match(after[at + 1], /^ {4}TypeError: deliberate bug for the log test$/, 'the stack follows the event');
  t.match(after[at + 2], /^ {8}at .*misbehave\.mjs/, 'with the frame that threw');
});

t.test('--log-format takes auto, pretty or json: anything else is a usage error', async (t) => {
  for (const command of ['run', 'demo']) {
    const r = await runCli([command, '--log-format', 'yaml']);
    t.equal(r.code, 2, `${command}: ${r.stderr}`);
    t.match(r.stderr, /GUARDIAN_E_USAGE: guardian \S+: option --log-format must be one of auto, pretty, json \(got 'yaml'\)/);
  }
});
