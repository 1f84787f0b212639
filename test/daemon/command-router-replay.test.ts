// Replaying a captured command (issue 11 review, item 3): the real CommandRouter in front of
// a real Modbus adapter and a pymodbus device; the device's log of executed writes counts the
// runs. The router's upstream is a recording double (the MQTT path is covered end to end in
// commands.test.ts): what is attacked here is the repeat cache.
// - 1000 junk commands (unknown device, refused writes) with fresh transactions do not push a
//   command that ran out of the cache; its bytes again are answered, not run;
// - a command dated ahead (within the skew) is remembered until its ts is no longer fresh,
//   not for a fixed time after it ran;
// - when the cache is full, a new command is refused with 429 GUARDIAN_E_COMMAND_REPEAT_FULL
//   and nothing fresh is forgotten;
// - once its ts is stale, the remembered entry may go: the bytes are then refused as expired;
// - a restart (or a crash before the reply) does not forget what ran: the journal on disk keeps
//   it until it is stale; a torn last line (power loss mid-append) is skipped and logged.
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { CommandsConfig } from '../../src/config/types.js';
import type { UpstreamAdapter } from '../../src/core/types.js';
import { parseManifest } from '../../src/firewall/manifest.js';
import { WritePolicy } from '../../src/firewall/write-policy.js';
import { CommandJournal } from '../../src/daemon/command-journal.js';
import { CommandRouter, LoggedWriteGate, type RouterExtras } from '../../src/daemon/command-router.js';
import { busConfig, runAdapter } from '../downstream/modbus/harness.js';
import { captureLogger, codeOf } from '../fixtures/logs.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

interface Reply { status: number; error?: { code: string }; data?: unknown; transaction: string | null }

async function rig(t: Test, options: Partial<CommandsConfig>, extras: RouterExtras = {}) {
  const server = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: Array<number>(4).fill(0) } } } });
  const bus = busConfig({ name: 'line', type: 'tcp', host: '127.0.0.1', port: server.port, devices: [{ name: 'press', unitId: 1, pollIntervalMs: 600_000, timeoutMs: 2000, retries: 0,
    points: [{ name: 'setpoint', table: 'holding', address: 0, type: 'uint16' }] }] });
  const logs = captureLogger();
  const policy = parseManifest(JSON.stringify({ SchemaVersion: 1, Name: 'r', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: {},
    Guardian: { WritePolicy: { Devices: { press: { Allow: [{ Table: 'holding', Addresses: 0, Min: 0, Max: 100 }] } } } } }));
  const run = await runAdapter(t, bus, logs, new LoggedWriteGate(WritePolicy.fromManifest(policy), logs.log));
  await run.waitFor((r) => r.device === 'press', { what: 'first poll' });
  const replies: Reply[] = [];
  const upstream: UpstreamAdapter = {
    name: 'recording-upstream', connected: true,
    start: () => Promise.resolve(), stop: () => Promise.resolve(), publish: () => Promise.resolve(), on: () => undefined,
    reply: (_device, _name, body) => { replies.push(JSON.parse(body) as Reply); return Promise.resolve(); },
  };
  const config: CommandsConfig = { requireTs: true, maxAgeMs: 60_000, maxFutureMs: 10_000, maxReadsPerMinute: 120, ...options };
  let router = new CommandRouter(upstream, [run.adapter], logs.log, config, extras);
  await router.start();
  t.teardown(() => router.stop());
  /** Stop this router and start another on the same device (a gateway restart, as far as commands go). */
  const restart = async (next: RouterExtras): Promise<void> => {
    await router.stop();
    router = new CommandRouter(upstream, [run.adapter], logs.log, config, next);
    await router.start();
  };
  const send = async (device: string, body: Record<string, unknown> | Buffer): Promise<Reply> => {
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const seen = replies.length;
    await router.handle({ device, name: 'write', payload, requester: 'mqtt:attacker', retained: false });
    const reply = replies[seen];
    if (reply === undefined || replies.length !== seen + 1) throw new Error(`expected one reply, got ${replies.length - seen}`);
    return reply;
  };
  return { server, logs, send, restart };
}

void t.test('junk with fresh transactions does not evict a command that ran', async (t) => {
  const r = await rig(t, {});
  const captured = Buffer.from(JSON.stringify({ point: 'setpoint', value: 70, transaction: 't-1', ts: Date.now() }));
  t.equal((await r.send('press', captured)).status, 200, 'the command runs');
  for (let i = 0; i < 1000; i++) await r.send('nosuch', { point: 'x', value: 1, transaction: `junk-${i}`, ts: Date.now() });
  for (let i = 0; i < 100; i++) {
    const refused = await r.send('press', { point: 'setpoint', value: 101, transaction: `deny-${i}`, ts: Date.now() });
    if (refused.status !== 403) t.fail(`refused write ${i}: status ${refused.status}`);
  }
  const replay = await r.send('press', captured);
  t.match(replay, { status: 200, transaction: 't-1' }, 'the replay gets the first answer');
  t.same((await r.server.writes()).map((w) => w.values), [[70]], 'the device executed the write once');
  t.ok(r.logs.lines.some((l) => l.msg === 'repeated command: answered again, not run again'), 'the replay is logged');
});

void t.test('a command dated ahead is remembered until its ts is stale', async (t) => {
  let offset = 0;
  const r = await rig(t, { maxAgeMs: 600_000, maxFutureMs: 10_000 }, { wallClock: () => Date.now() + offset });
  const captured = Buffer.from(JSON.stringify({ point: 'setpoint', value: 71, transaction: 't-2', ts: Date.now() + 9_000 }));
  t.equal((await r.send('press', captured)).status, 200);
  offset = 600_500; // the wall clock 10 min 0.5 s later: ts + maxAge is still ahead
  t.match(await r.send('press', captured), { status: 200, transaction: 't-2' }, 'answered from the first run');
  t.same((await r.server.writes()).map((w) => w.values), [[71]], 'run once');
});

void t.test('a full cache refuses new commands instead of forgetting fresh ones', async (t) => {
  const r = await rig(t, {}, { repeatMax: 3 });
  const cmds = [1, 2, 3].map((v) => Buffer.from(JSON.stringify({ point: 'setpoint', value: v, transaction: `f-${v}`, ts: Date.now() })));
  for (const c of cmds) t.equal((await r.send('press', c)).status, 200);
  const fourth = await r.send('press', { point: 'setpoint', value: 4, transaction: 'f-4', ts: Date.now() });
  t.match(fourth, { status: 429, error: { code: 'GUARDIAN_E_COMMAND_REPEAT_FULL' }, transaction: 'f-4' }, 'refused with 429 and the stable code');
  t.ok(r.logs.lines.some((l) => codeOf(l) === 'GUARDIAN_E_COMMAND_REPEAT_FULL'), 'and logged with it');
  for (const c of cmds) t.equal((await r.send('press', c)).status, 200, 'each remembered command is still answered, not run');
  t.same((await r.server.writes()).map((w) => w.values), [[1], [2], [3]], 'the device executed the three, once each, and not the fourth');
});

void t.test('once its ts is stale the entry may go, and the bytes are refused as expired', async (t) => {
  let offset = 0;
  const r = await rig(t, { maxAgeMs: 1000 }, { wallClock: () => Date.now() + offset, repeatMax: 1 });
  const captured = Buffer.from(JSON.stringify({ point: 'setpoint', value: 5, transaction: 'e-1', ts: Date.now() }));
  t.equal((await r.send('press', captured)).status, 200);
  // the entry is kept until its deadline by both clocks: wait for the monotonic one, move the wall one
  const until = performance.now() + 1000;
  await new Promise<void>((resolve) => { const tick = (): void => { if (performance.now() > until) resolve(); else setTimeout(tick, 50); }; tick(); });
  offset = 2000;
  const next = await r.send('press', { point: 'setpoint', value: 6, transaction: 'e-2', ts: Date.now() + offset });
  t.equal(next.status, 200, 'the stale entry made room (the cache holds one)');
  t.match(await r.send('press', captured), { status: 408, error: { code: 'GUARDIAN_E_COMMAND_EXPIRED' } }, 'the old bytes are refused as expired, not run');
  t.same((await r.server.writes()).map((w) => w.values), [[5], [6]]);
});

void t.test('a restart or a crash does not open a replay window: the journal keeps what ran', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'guardian-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'commands.journal');
  const jlogs = captureLogger();
  const journal = (): CommandJournal => new CommandJournal(file, jlogs.log);
  const r = await rig(t, {}, { journal: journal() });
  const ran = Buffer.from(JSON.stringify({ point: 'setpoint', value: 42, transaction: 'j-1', ts: Date.now() }));
  t.equal((await r.send('press', ran)).status, 200, 'the command runs');
  const refused = Buffer.from(JSON.stringify({ point: 'setpoint', value: 101, transaction: 'j-2', ts: Date.now() }));
  t.equal((await r.send('press', refused)).status, 403, 'a refused one ran nothing');

  await r.restart({ journal: journal() });
  t.match(await r.send('press', ran), { status: 200, transaction: 'j-1' }, 'after a restart the captured bytes are answered from the first run, not run');
  t.match(await r.send('press', refused), { status: 403 }, 'a command that ran nothing is judged again (nothing to protect)');

  // a run that accepted a command and died before it answered, and a power cut mid-append
  journal().accepted('press/write/j-3', Date.now() + 60_000);
  appendFileSync(file, '{"key":"press/write/j-4","untilW');
  await r.restart({ journal: journal() });
  const orphan = await r.send('press', { point: 'setpoint', value: 43, transaction: 'j-3', ts: Date.now() });
  t.match(orphan, { status: 409, error: { code: 'GUARDIAN_E_COMMAND_REPLAYED' }, transaction: 'j-3' }, 'accepted by a run that died: not run again, answered 409');
  t.ok(jlogs.lines.some((l) => typeof l.msg === 'string' && l.msg.includes('damaged line') && l['damaged'] === 1), 'the torn line was skipped and logged');
  t.same((await r.server.writes()).map((w) => w.values), [[42]], 'the device executed one write in all');
  t.notOk(readFileSync(file, 'utf8').includes('untilW"'), 'the journal was compacted without the torn line');
});
