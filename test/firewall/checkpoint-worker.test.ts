// The outbox's checkpoint worker, attacked. The in-process guard trusts that worker by its
// source text; a module loaded into `guardian run` (as a compromised dependency would be)
// starts the trusted text itself with worker data of its own, to make the unguarded thread
// load an attacker module. The module path is pinned inside the worker's source, so the
// attacker module never runs (its marker file is never written): worker data naming a module
// is refused with GUARDIAN_E_FIREWALL_DENIED, and a path that is not a database is opened as
// one (and fails as one), never loaded as code.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { codeOf } from '../fixtures/logs.js';
import { startMosquitto } from '../fixtures/mosquitto.js';
import { sleep, tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'exfiltrate-worker.mjs');

void t.test('the trusted checkpoint worker cannot be made to load an attacker module', async (t) => {
  const broker = await startMosquitto(t);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [1] } } } });
  const dir = await tmpDir(t);
  const stateDir = join(dir, 'state');
  const env = {
    EXFIL_TRIGGER: join(dir, 'go'), EXFIL_RESULTS: join(dir, 'results.json'), EXFIL_MARKER: join(dir, 'marker'),
    EXFIL_ATTACKER: join(dir, 'attacker.cjs'), EXFIL_OUTBOX: join(stateDir, 'outbox.db'),
  };
  const config = {
    version: 1,
    gateway: { id: 'gw-cw', stateDir, shutdownTimeoutMs: 2000 },
    upstream: { mqtt: { url: broker.url, reconnect: { initialMs: 100, maxMs: 500 } } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [{ name: 'plc-1', unitId: 1, pollIntervalMs: 200, points: [{ name: 'counter', table: 'holding', address: 0, type: 'uint16' }] }] }],
  };
  const gw = await startGateway(t, config, { nodeArgs: ['--import', FIXTURE], env });
  await gw.waitForLog((l) => l.msg === 'guardian running');
  await gw.waitForLog((l) => l.msg === 'outbox opened');

  writeFileSync(env.EXFIL_TRIGGER, '');
  for (let i = 0; i < 600 && !existsSync(env.EXFIL_RESULTS); i++) await sleep(100);
  const outcomes = Object.fromEntries((JSON.parse(readFileSync(env.EXFIL_RESULTS, 'utf8')) as { name: string; outcome: string }[]).map((r) => [r.name, r.outcome]));
  t.same(outcomes, {
    'an untrusted source loading the attacker module': 'denied',
    'the trusted source, workerData.module = the attacker module': 'denied',
    'the trusted source, workerData.path = the attacker module': 'replied:SQLITE_NOTADB',
    'the trusted source, workerData = the attacker module path': 'denied',
    'the trusted source, execArgv --require the attacker module': 'denied',
    'the trusted source, env NODE_OPTIONS --require the attacker module': 'denied',
    'the trusted source, as Guardian starts it': 'replied:ok',
  }, 'worker data naming a module is refused; a path is opened as a database, never loaded as code; the real use still works');
  t.notOk(existsSync(env.EXFIL_MARKER), 'the attacker module never ran (no marker file)');
  t.ok(gw.lines.some((l) => codeOf(l) === 'GUARDIAN_E_FIREWALL_DENIED' && l['kind'] === 'worker'), 'the untrusted source was refused by the armed guard and logged');
  t.notOk(gw.lines.some((l) => l.level === 50 || l.level === 60), 'no error or fatal log from the gateway');
});
