// "check-config says OK" means `run` starts: bad configs of the preflight's kinds
// (files the config names, the state directory, the manifest against the config,
// the key store) through the real CLI — check-config AND run give the same code and
// line, run exits before "guardian starting", and nothing is written.
import { spawn } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { manifestFor } from '../../src/firewall/config-coverage.js';
import { childEnv, collect, GUARDIAN_BIN, runCli, withPreloadOptOut, type CliResult } from '../fixtures/cli.js';
import { makePki, signCsr, type Pki } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';

type Doc = Record<string, unknown>;
const NOBODY = 65534;

interface Setup {
  readonly dir: string;
  readonly doc: Doc;
  /** The manifest written after the mutation: generated from the config (default), this document, or none. */
  manifest?: Doc | 'generated' | 'none';
}

interface Case {
  readonly name: string;
  readonly code: string;
  /** An exact line of stderr (after substituting DIR). */
  readonly line: string;
  /** Run both commands as user nobody (a file root can read but the service user cannot). */
  readonly asNobody?: boolean;
  /** Start from a provisioned simulated-Pluton identity with the TLS certificate installed. */
  readonly identity?: boolean;
  mutate(s: Setup): void;
}

const mqtt = (d: Doc): Doc => (d['upstream'] as Doc)['mqtt'] as Doc;
const tls = (d: Doc): Doc => mqtt(d)['tls'] as Doc;
const gw = (d: Doc): Doc => d['gateway'] as Doc;

function baseDoc(dir: string): Doc {
  return {
    version: 1,
    gateway: { id: 'gw-promise', stateDir: path.join(dir, 'state') },
    firewall: { manifest: path.join(dir, 'app_manifest.json') },
    upstream: { mqtt: { url: 'mqtts://127.0.0.1:18883', tls: { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'client.pem'), key: path.join(dir, 'client.key') } } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: 15020, devices: [{ name: 'press', unitId: 1, points: [{ name: 'p', table: 'holding', address: 0, type: 'uint16' }] }] }],
  };
}

/** The identity variant: the TLS client key from the key store (simulated Pluton), no key files. */
function useIdentity(d: Doc, dir: string): void {
  mqtt(d)['tls'] = { ca: path.join(dir, 'ca.pem'), identity: true };
  d['identity'] = { backend: 'pluton-sim' };
}

/** Flips one base64 character inside a field of a key store record: still JSON, no longer what was sealed. */
function tamper(file: string, field: string): void {
  const record = JSON.parse(readFileSync(file, 'utf8')) as { data: Record<string, string> };
  const value = record.data[field]!;
  record.data[field] = (value[0] === 'A' ? 'B' : 'A') + value.slice(1);
  writeFileSync(file, JSON.stringify(record, null, 2), { mode: 0o600 });
}

const NO_KEY = 'it holds no PEM private key that can be read (-----BEGIN PRIVATE KEY-----, or an RSA/EC key)';

/** A state directory (0700) with one entry of the wrong kind: a file of text, a directory, or a link to the CA file. */
function stateWith(s: Setup, name: string, kind: 'file' | 'dir' | 'link'): void {
  const state = path.join(s.dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  const entry = path.join(state, name);
  if (kind === 'file') writeFileSync(entry, 'not a database, not a directory\n');
  else if (kind === 'dir') mkdirSync(entry);
  else symlinkSync(path.join(s.dir, 'ca.pem'), entry);
}

const cases: Case[] = [
  { name: 'missing CA', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.ca: DIR/nope-ca.pem: no such file', mutate: (s) => { tls(s.doc)['ca'] = path.join(s.dir, 'nope-ca.pem'); } },
  { name: 'missing client cert', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.cert: DIR/nope.pem: no such file', mutate: (s) => { tls(s.doc)['cert'] = path.join(s.dir, 'nope.pem'); } },
  { name: 'missing client key', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.key: DIR/nope.key: no such file', mutate: (s) => { tls(s.doc)['key'] = path.join(s.dir, 'nope.key'); } },
  { name: 'CA is a directory', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.ca: DIR/cadir: it is a directory, not a regular file', mutate: (s) => { mkdirSync(path.join(s.dir, 'cadir')); tls(s.doc)['ca'] = path.join(s.dir, 'cadir'); } },
  { name: 'CA under a file', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.ca: DIR/ca.pem/x.pem: DIR/ca.pem is not a directory', mutate: (s) => { tls(s.doc)['ca'] = path.join(s.dir, 'ca.pem', 'x.pem'); } },
  {
    name: 'CA the service user cannot read', code: 'GUARDIAN_E_CONFIG_FILES', asNobody: true,
    line: 'upstream.mqtt.tls.ca: DIR/ca.pem: not readable by user nobody (mode 0600, owner uid 0 gid 0)',
    mutate: (s) => { chmodSync(path.join(s.dir, 'ca.pem'), 0o600); },
  },
  {
    name: 'key in a directory the service user cannot enter', code: 'GUARDIAN_E_CONFIG_FILES', asNobody: true,
    line: 'upstream.mqtt.tls.key: DIR/private/client.key: user nobody cannot enter DIR/private (mode 0700, owner uid 0 gid 0)',
    mutate: (s) => {
      mkdirSync(path.join(s.dir, 'private'), { mode: 0o700 });
      cpSync(path.join(s.dir, 'client.key'), path.join(s.dir, 'private', 'client.key'));
      tls(s.doc)['key'] = path.join(s.dir, 'private', 'client.key');
    },
  },
  { name: 'CA not a PEM file', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.ca: DIR/ca.pem: it holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)', mutate: (s) => { writeFileSync(path.join(s.dir, 'ca.pem'), 'not a pem\n'); } },
  { name: 'CA a private key', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.ca: DIR/client.key: it holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)', mutate: (s) => { tls(s.doc)['ca'] = path.join(s.dir, 'client.key'); } },
  { name: 'CA a JSON file', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.ca: DIR/ca.pem: it holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)', mutate: (s) => { writeFileSync(path.join(s.dir, 'ca.pem'), '{"ca": true}\n'); } },
  { name: 'client cert not a PEM file', code: 'GUARDIAN_E_CONFIG_FILES', line: 'upstream.mqtt.tls.cert: DIR/client.pem: it holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)', mutate: (s) => { writeFileSync(path.join(s.dir, 'client.pem'), 'not a pem\n'); } },
  { name: 'client key not a PEM file', code: 'GUARDIAN_E_CONFIG_FILES', line: `upstream.mqtt.tls.key: DIR/client.key: ${NO_KEY}`, mutate: (s) => { writeFileSync(path.join(s.dir, 'client.key'), 'not a pem\n'); } },
  {
    name: 'client key not the certificate\'s', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'upstream.mqtt.tls.key: DIR/client.key: the key does not match the certificate in DIR/client.pem (upstream.mqtt.tls.cert)',
    mutate: (s) => { writeFileSync(path.join(s.dir, 'client.key'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' })); },
  },
  {
    name: 'client key encrypted', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'upstream.mqtt.tls.key: DIR/client.key: the private key is encrypted and Guardian takes no passphrase: decrypt it (`openssl pkey -in KEY -out PLAIN`) and keep it mode 0600',
    mutate: (s) => {
      const key = createPrivateKey(readFileSync(path.join(s.dir, 'client.key')));
      writeFileSync(path.join(s.dir, 'client.key'), key.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'secret' }));
    },
  },
  {
    name: 'state directory a symbolic link', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/state: it is a symbolic link (to DIR/real); the identity files refuse to follow links: set gateway.stateDir to the real path',
    mutate: (s) => { mkdirSync(path.join(s.dir, 'real'), { mode: 0o700 }); symlinkSync(path.join(s.dir, 'real'), path.join(s.dir, 'state')); },
  },
  {
    name: 'failures a regular file', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/state/failures: it is a regular file, not a directory; move it away (Guardian makes the directory)',
    mutate: (s) => { stateWith(s, 'failures', 'file'); },
  },
  {
    name: 'identity a regular file', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/state/identity: it is a regular file, not a directory; move it away (Guardian makes the directory)',
    mutate: (s) => { stateWith(s, 'identity', 'file'); },
  },
  {
    name: 'command journal a directory', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/state/commands.journal: it is a directory, not a regular file; move it away (Guardian makes the file)',
    mutate: (s) => { stateWith(s, 'commands.journal', 'dir'); },
  },
  {
    name: 'outbox a directory', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/state/outbox.db: it is a directory, not a regular file; move it away (Guardian makes the file)',
    mutate: (s) => { stateWith(s, 'outbox.db', 'dir'); },
  },
  {
    name: 'outbox WAL a symbolic link', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/state/outbox.db-wal: it is a symbolic link, not a regular file; move it away (Guardian makes the file)',
    mutate: (s) => { stateWith(s, 'outbox.db-wal', 'link'); },
  },
  {
    name: 'outbox not a database', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/state/outbox.db: it is not an SQLite database (no "SQLite format 3" header); move it away and Guardian makes a new outbox',
    mutate: (s) => { stateWith(s, 'outbox.db', 'file'); },
  },
  {
    name: 'manifest the service user cannot read', code: 'GUARDIAN_E_MANIFEST_READ', asNobody: true,
    line: 'firewall.manifest: DIR/app_manifest.json: not readable by user nobody (mode 0600, owner uid 0 gid 0)',
    mutate: (s) => { s.manifest = 'generated'; },
  },
  { name: 'state directory is a file', code: 'GUARDIAN_E_CONFIG_FILES', line: 'gateway.stateDir: DIR/client.pem: it is a regular file, not a directory', mutate: (s) => { gw(s.doc)['stateDir'] = path.join(s.dir, 'client.pem'); } },
  {
    name: 'state directory writable by every user', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/open: it is writable by every user (mode 0777, owner uid 0 gid 0); make it 0700 or 0750',
    mutate: (s) => { mkdirSync(path.join(s.dir, 'open')); chmodSync(path.join(s.dir, 'open'), 0o777); gw(s.doc)['stateDir'] = path.join(s.dir, 'open'); },
  },
  {
    name: 'state directory writable by its group', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/group: it is writable by its group (mode 0770, owner uid 0 gid 0); make it 0700 or 0750',
    mutate: (s) => { mkdirSync(path.join(s.dir, 'group')); chmodSync(path.join(s.dir, 'group'), 0o770); gw(s.doc)['stateDir'] = path.join(s.dir, 'group'); },
  },
  {
    name: 'state directory cannot be created under a file', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'gateway.stateDir: DIR/ca.pem/state: it cannot be created: DIR/ca.pem is not a directory',
    mutate: (s) => { gw(s.doc)['stateDir'] = path.join(s.dir, 'ca.pem', 'state'); },
  },
  {
    name: 'state directory the service user cannot create', code: 'GUARDIAN_E_CONFIG_FILES', asNobody: true,
    line: 'gateway.stateDir: DIR/rootonly/state: it does not exist, and user nobody cannot create it in DIR/rootonly (mode 0755, owner uid 0 gid 0)',
    mutate: (s) => { mkdirSync(path.join(s.dir, 'rootonly'), { mode: 0o755 }); gw(s.doc)['stateDir'] = path.join(s.dir, 'rootonly', 'state'); },
  },
  {
    name: 'no manifest', code: 'GUARDIAN_E_MANIFEST_READ',
    line: 'firewall.manifest: DIR/app_manifest.json: no such file; Guardian expects its manifest there (the config\'s firewall.manifest). Make one with `guardian firewall init --config DIR/guardian.yaml > DIR/app_manifest.json`, then review it',
    mutate: (s) => { s.manifest = 'none'; },
  },
  {
    name: 'manifest without the broker', code: 'GUARDIAN_E_FIREWALL_CONFIG',
    line: 'upstream.mqtt.url: 127.0.0.1:18883 is not in the manifest\'s Capabilities.AllowedConnections — add "127.0.0.1:18883"',
    mutate: (s) => { s.manifest = { SchemaVersion: 1, Name: 'x', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: { AllowedConnections: ['127.0.0.1:15020'] } }; },
  },
  {
    name: 'manifest without the bus', code: 'GUARDIAN_E_FIREWALL_CONFIG',
    line: 'buses[0]: 127.0.0.1:15020 is not in the manifest\'s Capabilities.AllowedConnections — add "127.0.0.1:15020"',
    mutate: (s) => { s.manifest = { SchemaVersion: 1, Name: 'x', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: { AllowedConnections: ['127.0.0.1:18883'] } }; },
  },
  {
    name: 'serial bus not in the manifest', code: 'GUARDIAN_E_FIREWALL_CONFIG',
    line: 'buses[0].port: serial device /dev/ttyUSB9 is not in the manifest\'s Capabilities.Uart — add "/dev/ttyUSB9"',
    mutate: (s) => {
      s.doc['buses'] = [{ name: 'rs485', type: 'rtu', port: '/dev/ttyUSB9', devices: [{ name: 'press', unitId: 1, points: [{ name: 'p', table: 'holding', address: 0, type: 'uint16' }] }] }];
      s.manifest = { SchemaVersion: 1, Name: 'x', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: { AllowedConnections: ['127.0.0.1:18883'], Uart: ['ttyUSB9'] } };
    },
  },
  {
    name: 'identity not provisioned', code: 'GUARDIAN_E_CONFIG_FILES',
    line: 'identity.plutonSim.secretFile: DIR/state/identity/device.secret: no such file (`guardian identity init` creates it)',
    mutate: (s) => { useIdentity(s.doc, s.dir); },
  },
  {
    name: 'tampered TLS key record', code: 'GUARDIAN_E_KEYSTORE_CORRUPT', identity: true,
    line: '  A key store file is damaged or was tampered with and is refused; restore it from backup, or move the identity directory away and run `guardian identity init` again (a new identity needs a new certificate).',
    mutate: (s) => { useIdentity(s.doc, s.dir); tamper(path.join(s.dir, 'state', 'identity', 'keys', 'tls.json'), 'ciphertext'); },
  },
  {
    name: 'truncated key store root', code: 'GUARDIAN_E_KEYSTORE_CORRUPT', identity: true,
    line: 'guardian: GUARDIAN_E_KEYSTORE_CORRUPT: key store file DIR/state/identity/store.json is damaged or was tampered with: not valid JSON',
    mutate: (s) => { useIdentity(s.doc, s.dir); writeFileSync(path.join(s.dir, 'state', 'identity', 'store.json'), '{"format":', { mode: 0o600 }); },
  },
  {
    name: 'TLS certificate not installed', code: 'GUARDIAN_E_KEYSTORE_MISSING', identity: true,
    line: '  Something the upstream needs is not provisioned yet: do what the message says (`guardian identity init` for the device keys, `guardian identity import-sas-key` for the SAS key, `guardian identity install-cert` for the TLS certificate).',
    mutate: (s) => { useIdentity(s.doc, s.dir); rmSync(path.join(s.dir, 'state', 'identity', 'certs', 'tls.crt')); },
  },
  {
    name: 'SAS without an imported key', code: 'GUARDIAN_E_KEYSTORE_MISSING', identity: true,
    line: 'guardian: GUARDIAN_E_KEYSTORE_MISSING: the key store has no object named sas; run `guardian identity import-sas-key`',
    mutate: (s) => {
      s.doc['identity'] = { backend: 'pluton-sim' };
      mqtt(s.doc)['tls'] = { ca: path.join(s.dir, 'ca.pem') };
      mqtt(s.doc)['sas'] = { resourceUri: 'hub.example/devices/gw-promise' };
      mqtt(s.doc)['username'] = 'hub.example/gw-promise/?api-version=2021-04-12';
    },
  },
  {
    name: 'device secret readable by others', code: 'GUARDIAN_E_KEYSTORE_SECRET', identity: true,
    line: '  A key store secret file (the simulated Pluton device secret, or the TPM owner authorization file) is missing, malformed or readable by others; it must be mode 0600 and owned by the user that runs Guardian.',
    mutate: (s) => { useIdentity(s.doc, s.dir); chmodSync(path.join(s.dir, 'state', 'identity', 'device.secret'), 0o644); },
  },
];

interface Golden { readonly pki: Pki; readonly state: string }

/** One provisioned simulated-Pluton identity with a TLS certificate, copied into each case that needs it. */
async function golden(t: Test): Promise<Golden> {
  const dir = await tmpDir(t, 'guardian-golden-');
  const pki = await makePki(await tmpDir(t, 'guardian-pki-'));
  const config = path.join(dir, 'guardian.yaml');
  writeFileSync(config, stringify({ ...baseDoc(dir), identity: { backend: 'pluton-sim' } }));
  const init = await runCli(['identity', 'init', '--config', config]);
  t.equal(init.code, 0, 'identity init');
  const csr = await runCli(['identity', 'csr', '--key', 'tls', '--subject', 'CN=gw-promise', '--config', config]);
  t.equal(csr.code, 0, 'identity csr');
  writeFileSync(path.join(dir, 'tls.crt'), await signCsr(pki, csr.stdout));
  const installed = await runCli(['identity', 'install-cert', path.join(dir, 'tls.crt'), '--config', config]);
  t.equal(installed.code, 0, 'identity install-cert');
  return { pki, state: path.join(dir, 'state') };
}

/**
 * The built CLI, as user nobody when asked; through env -u NODE_OPTIONS, since tap's
 * process-info hook re-adds its --import to a child's NODE_OPTIONS, and that hook's
 * exit handler cannot write tap's files as nobody.
 */
function cli(args: readonly string[], asNobody: boolean): Promise<CliResult> {
  return collect(spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, GUARDIAN_BIN, ...withPreloadOptOut(args)], {
    stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(), ...(asNobody ? { uid: NOBODY, gid: NOBODY } : {}),
  }));
}

/** A case's directory, files and config; returns the config file. */
async function prepare(t: Test, c: Case, g: Golden): Promise<{ dir: string; file: string; doc: Doc }> {
  const dir = await tmpDir(t, 'guardian-promise-');
  for (const [name, from] of [['ca.pem', g.pki.caCert], ['client.pem', g.pki.clientCert], ['client.key', g.pki.clientKey]] as const) {
    cpSync(from, path.join(dir, name));
    chmodSync(path.join(dir, name), 0o644);
  }
  if (c.identity === true) cpSync(g.state, path.join(dir, 'state'), { recursive: true });
  if (c.asNobody === true) {
    chmodSync(dir, 0o755);
    chownSync(dir, NOBODY, NOBODY);
  }
  const s: Setup = { dir, doc: baseDoc(dir), manifest: 'generated' };
  c.mutate(s);
  const file = path.join(dir, 'guardian.yaml');
  writeFileSync(file, stringify(s.doc), { mode: 0o644 });
  if (s.manifest !== 'none') {
    const manifest = s.manifest === 'generated' || s.manifest === undefined ? manifestFor(parseConfig(stringify(s.doc), file)) : s.manifest;
    writeFileSync(path.join(dir, 'app_manifest.json'), JSON.stringify(manifest, null, 2), { mode: c.name === 'manifest the service user cannot read' ? 0o600 : 0o644 });
  }
  return { dir, file, doc: s.doc };
}

t.test('bad configs of every preflight kind: check-config and run fail alike, before anything starts', async (t) => {
  t.ok(cases.length >= 15, `${cases.length} cases`);
  const g = await golden(t);
  for (let i = 0; i < cases.length; i += 4) {
    await Promise.all(cases.slice(i, i + 4).map(async (c) => {
      const { dir, file, doc } = await prepare(t, c, g);
      const stateDir = String(gw(doc)['stateDir']);
      const stateBefore = existsSync(stateDir);
      const outboxBefore = existsSync(path.join(stateDir, 'outbox.db'));
      const nobody = c.asNobody === true;
      const check = await cli(['check-config', file], nobody);
      const run = await cli(['run', '--config', file], nobody);
      const line = c.line.replaceAll('DIR', dir);
      t.equal(check.code, 1, `${c.name}: check-config exits 1`);
      t.equal(run.code, 1, `${c.name}: run exits 1`);
      const first = check.stderr.split('\n')[0] ?? '';
      t.match(first, new RegExp(`^guardian: ${c.code}: `), `${c.name}: the code`);
      t.equal(run.stderr.split('\n')[0], first, `${c.name}: run says what check-config says`);
      t.ok(check.stderr.split('\n').includes(line), `${c.name}: the line`, { expected: line, stderr: check.stderr });
      t.ok(run.stderr.split('\n').includes(line), `${c.name}: the same line from run`);
      t.notMatch(run.stdout, /guardian starting|guardian running/, `${c.name}: nothing started`);
      t.equal(existsSync(stateDir), stateBefore, `${c.name}: no state directory was made`);
      t.equal(existsSync(path.join(stateDir, 'outbox.db')), outboxBefore, `${c.name}: no outbox was written`);
      if (nobody) {
        const asUser = await runCli(['check-config', '--as-user', 'nobody', file]);
        t.equal(asUser.stderr.split('\n')[0], first, `${c.name}: root with --as-user nobody sees the same`);
        t.ok(asUser.stderr.split('\n').includes(line), `${c.name}: the same line with --as-user`);
      }
    }));
  }
});

t.test('the good config of these cases passes check-config, and run gets to "guardian running"', async (t) => {
  const g = await golden(t);
  for (const identity of [false, true]) {
    const c: Case = { name: identity ? 'good, identity' : 'good', code: '', line: '', identity, mutate: (s) => { if (identity) useIdentity(s.doc, s.dir); } };
    const { file } = await prepare(t, c, g);
    const check = await runCli(['check-config', file]);
    t.equal(check.code, 0, `${c.name}: check-config OK`, { stderr: check.stderr });
    t.match(check.stdout, /: OK \(1 bus, 1 device, 1 point\)/);
    t.equal(await runsUntil(t, file, 'guardian running'), true, `${c.name}: run reached "guardian running"`);
  }
});

/** Starts `guardian run`; true once a log line has `msg`, false if it exited first. The process is killed after. */
function runsUntil(t: Test, file: string, msg: string): Promise<boolean> {
  const child = spawn(process.execPath, [GUARDIAN_BIN, ...withPreloadOptOut(['run', '--config', file])], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  t.teardown(() => { child.kill('SIGKILL'); });
  return new Promise((resolve) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(`"msg":"${msg}"`)) {
        child.kill('SIGKILL');
        resolve(true);
      }
    });
    child.on('close', () => resolve(false));
  });
}
