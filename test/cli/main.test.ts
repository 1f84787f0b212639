import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { childEnv, GUARDIAN_BIN, runCli } from '../fixtures/cli.js';
import { connectClient, startMosquitto } from '../fixtures/mosquitto.js';
import { tmpDir } from '../fixtures/ports.js';

t.test('plan prints the coalesced request plan of every device', async (t) => {
  const file = join(await tmpDir(t), 'g.yaml');
  writeFileSync(file, stringify({
    version: 1, gateway: { id: 'g' }, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1' } },
    buses: [{
      name: 'line', type: 'rtu', port: '/dev/ttyUSB0',
      devices: [{
        name: 'meter', unitId: 3, maxGap: 4,
        points: [
          { name: 'a', table: 'holding', address: 0, type: 'float32' },
          { name: 'b', table: 'holding', address: 6, type: 'uint16' },
          { name: 'c', table: 'holding', address: 12, type: 'int64' },
          { name: 'd', table: 'discrete', address: 5, type: 'bool' },
          { name: 'e', table: 'discrete', address: 1000, type: 'bool' },
        ],
      }],
    }],
  }));
  const res = await runCli(['plan', '--config', file]);
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stdout, [
    'bus line (rtu)',
    'meter (unit 3): 4 requests for 5 points',
    '  discrete 5..5 (1 bit): d',
    '  discrete 1000..1000 (1 bit): e',
    '  holding 0..6 (7 registers): a, b',
    '  holding 12..15 (4 registers): c',
    '',
  ].join('\n'));
});

t.test('usage errors exit 2; help and version exit 0', async (t) => {
  const unknown = await runCli(['frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /^guardian: GUARDIAN_E_USAGE: unknown command 'frobnicate'/);
  const badFlag = await runCli(['run', '--no-such-flag']);
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, /^guardian: GUARDIAN_E_USAGE: /);
  t.equal((await runCli([])).code, 2);
  const help = await runCli(['help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /guardian run \[--config FILE \| FILE\] \[--allow-preload\]/);
  const version = await runCli(['--version']);
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
});

t.test('watch prints the messages on a topic filter', async (t) => {
  const broker = await startMosquitto(t);
  const pub = await connectClient(t, broker.url);
  await pub.publishAsync('guardian/g/state', '{"state":"online"}', { qos: 1, retain: true });
  const watch = spawn(process.execPath, [GUARDIAN_BIN, 'watch', '--url', broker.url, '--topic', 'guardian/#'], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => watch.on('exit', (code) => resolve(code)));
  t.teardown(() => { watch.kill('SIGKILL'); });
  let out = '';
  await new Promise<void>((resolve) => {
    watch.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('guardian/g/d/telemetry')) resolve();
      else if (out.includes('(retained)')) void pub.publishAsync('guardian/g/d/telemetry', '{"seq":1}', { qos: 1 });
    });
  });
  t.equal(out, 'guardian/g/state (retained) {"state":"online"}\nguardian/g/d/telemetry {"seq":1}\n');
  watch.kill('SIGINT');
  t.equal(await exited, 0);
});

t.test('run without its manifest, or with one that does not allow what the config uses, does not start', async (t) => {
  const dir = await tmpDir(t);
  const file = join(dir, 'guardian.yaml');
  const manifest = join(dir, 'app_manifest.json');
  writeFileSync(file, stringify({
    version: 1, gateway: { id: 'g', stateDir: join(dir, 'state') }, firewall: { manifest },
    upstream: { mqtt: { url: 'mqtts://broker.example.com', tls: { ca: join(dir, 'no-ca.pem') } } },
    buses: [
      { name: 'tcp', type: 'tcp', host: '10.1.2.3', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'holding', address: 0, type: 'uint16' }] }] },
      { name: 'rs485', type: 'rtu', port: '/dev/ttyUSB7', devices: [{ name: 'e', unitId: 1, points: [{ name: 'p', table: 'holding', address: 0, type: 'uint16' }] }] },
    ],
  }));
  const none = await runCli(['run', '--config', file]);
  t.equal(none.code, 1);
  // the manifest's problems and the files' come in one list, under the manifest stage's code
  t.match(none.stderr, new RegExp(`^guardian: GUARDIAN_E_MANIFEST_READ: ${manifest} \\(and the files ${file} names\\) has 2 problems:\nfirewall\\.manifest: ${manifest}: no such file; .*guardian firewall init --config ${file} > ${manifest}.*\nupstream\\.mqtt\\.tls\\.ca: ${dir}/no-ca\\.pem: no such file\n`));
  writeFileSync(manifest, JSON.stringify({
    SchemaVersion: 1, Name: 'g', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f',
    Capabilities: { AllowedConnections: ['broker.example.com:1883', 'www.example.com:8883', '10.1.0.0/16:503'], Uart: ['/dev/ttyUSB0'] },
  }));
  const narrow = await runCli(['run', '--config', file]);
  t.equal(narrow.code, 1);
  t.equal(narrow.stderr, [
    `guardian: GUARDIAN_E_FIREWALL_CONFIG: ${manifest} (and the files ${file} names) has 4 problems:`,
    "upstream.mqtt.url: broker.example.com:8883 is not in the manifest's Capabilities.AllowedConnections — add \"broker.example.com:8883\"",
    "buses[0]: 10.1.2.3:502 is not in the manifest's Capabilities.AllowedConnections — add \"10.1.2.3:502\"",
    "buses[1].port: serial device /dev/ttyUSB7 is not in the manifest's Capabilities.Uart — add \"/dev/ttyUSB7\"",
    `upstream.mqtt.tls.ca: ${join(dir, 'no-ca.pem')}: no such file`,
    '',
  ].join('\n'), 'each thing the config uses and the manifest does not allow, with its config path');
  t.notOk(existsSync(join(dir, 'state')), 'nothing was started');
});

t.test('run with a bad or missing config reports like check-config and exits 1', async (t) => {
  const file = join(await tmpDir(t), 'bad.yaml');
  writeFileSync(file, stringify({ version: 1, gateway: { id: 'g', colour: 'red' }, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1' } }, buses: [] }));
  const res = await runCli(['run', '--config', file]);
  t.equal(res.code, 1);
  t.equal(res.stderr, [
    `guardian: GUARDIAN_E_CONFIG_INVALID: ${file} has 2 problems:`,
    'line 4, column 3: gateway.colour: unknown key',
    'line 8, column 1: buses: must have at least 1 item',
    '',
  ].join('\n'));
  const missing = await runCli(['run', '--config', `${file}.nope`]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^guardian: GUARDIAN_E_CONFIG_READ: cannot read config .*bad\.yaml\.nope: ENOENT/);
});
