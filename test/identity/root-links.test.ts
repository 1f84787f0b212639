// The identity commands are documented to run as root (`sudo guardian identity …`)
// while the state directory belongs to Guardian's unprivileged user. That user
// plants links, a FIFO and a hard link in it, aimed at a root-owned directory
// and file; the root-run commands must refuse them (GUARDIAN_E_IDENTITY_UNSAFE_PATH,
// logged) and leave the targets exactly as they were (owner, mode, content).
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lchownSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { runCli, type CliResult } from '../fixtures/cli.js';
import { makePki, signCsr } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';

const BUSES = [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }];
const NOBODY = { uid: 65534, gid: 65534 };

interface Snapshot { uid: number; gid: number; mode: number; entries: string; content: string }

function snapshot(p: string): Snapshot {
  const st = lstatSync(p);
  return {
    uid: st.uid, gid: st.gid, mode: st.mode,
    entries: st.isDirectory() ? readdirSync(p).sort().join(',') : '',
    content: st.isFile() ? readFileSync(p, 'utf8') : '',
  };
}

/** What the attacker (the unprivileged owner of the state directory) can do: the entry is theirs. */
function plant(p: string, make: (p: string) => void): void {
  make(p);
  lchownSync(p, NOBODY.uid, NOBODY.gid);
}

function refused(t: Test, result: CliResult, what: string): void {
  t.equal(result.code, 1, `${what}: the command fails`);
  t.match(result.stderr, /GUARDIAN_E_IDENTITY_UNSAFE_PATH: refusing /, `${what}: with the stable code`);
  const logged = result.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; err?: { code?: string } });
  t.ok(logged.some((l) => l.level === 'error' && l.err?.code === 'GUARDIAN_E_IDENTITY_UNSAFE_PATH'), `${what}: and a log line with the code`);
}

t.test('root-run identity commands never follow what the state directory\'s owner planted', async (t) => {
  if (process.getuid?.() !== 0) {
    t.fail('this test performs the attack as root (the machine\'s tests run as root)');
    return;
  }
  const base = await tmpDir(t);
  chmodSync(base, 0o755);
  const stateDir = path.join(base, 'state');
  mkdirSync(stateDir, { mode: 0o750 });
  chownSync(stateDir, NOBODY.uid, NOBODY.gid);
  const identityDir = path.join(stateDir, 'identity');
  const config = path.join(base, 'guardian.yaml');
  writeFileSync(config, stringify({
    version: 1, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } }, buses: BUSES,
    gateway: { id: 'gw-root', stateDir }, identity: { backend: 'pluton-sim' },
  }));
  const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli([...args, '--config', config], 30_000, stdin);

  // root's things the attacker aims at
  const victimDir = path.join(base, 'etc-like');
  mkdirSync(victimDir, { mode: 0o755 });
  const victimFile = path.join(victimDir, 'passwd');
  writeFileSync(victimFile, 'root:x:0:0:root:/root:/bin/sh\n', { mode: 0o644 });
  const before = { dir: snapshot(victimDir), file: snapshot(victimFile) };
  const unchanged = (t: Test, what: string): void => {
    t.same(snapshot(victimDir), before.dir, `${what}: the root-owned directory is untouched (owner, mode, entries)`);
    t.same(snapshot(victimFile), before.file, `${what}: the root-owned file is untouched (owner, mode, content)`);
  };

  const init = await cli(['identity', 'init']);
  t.equal(init.code, 0, init.stderr);
  for (const p of [identityDir, path.join(identityDir, 'device.secret'), path.join(identityDir, 'store.json'), path.join(identityDir, 'keys', 'tls.json')]) {
    t.match(statSync(p), NOBODY, `${path.relative(stateDir, p)} was created by the state directory's owner, not chowned`);
  }

  const pki = await makePki(await tmpDir(t, 'guardian-pki-'));
  const csr = await cli(['identity', 'csr', '--key', 'tls', '--subject', 'CN=gw-root']);
  t.equal(csr.code, 0, csr.stderr);
  const certFile = path.join(base, 'gw-root.crt');
  writeFileSync(certFile, await signCsr(pki, csr.stdout));
  const certs = path.join(identityDir, 'certs');

  await t.test('certs/ is a link to a root-owned directory', async (t) => {
    plant(certs, (p) => symlinkSync(victimDir, p));
    refused(t, await cli(['identity', 'install-cert', certFile]), 'install-cert');
    unchanged(t, 'install-cert through a linked directory');
    t.notOk(existsSync(path.join(victimDir, 'tls.crt')), 'no certificate written into the target');
    rmSync(certs);
  });

  await t.test('the certificate file to be written is a link to a root-owned file', async (t) => {
    mkdirSync(certs, { mode: 0o700 });
    chownSync(certs, NOBODY.uid, NOBODY.gid);
    plant(path.join(certs, 'tls.crt'), (p) => symlinkSync(victimFile, p));
    refused(t, await cli(['identity', 'install-cert', certFile]), 'install-cert');
    unchanged(t, 'install-cert onto a link');
    rmSync(path.join(certs, 'tls.crt'));
    const ok = await cli(['identity', 'install-cert', certFile]);
    t.equal(ok.code, 0, `without the link it installs: ${ok.stderr}`);
    t.match(lstatSync(path.join(certs, 'tls.crt')), { ...NOBODY, nlink: 1 }, 'as a regular file of the state directory\'s owner');
  });

  await t.test('a key record is a hard link to a root-owned file', async (t) => {
    linkSync(victimFile, path.join(identityDir, 'keys', 'sas.json')); // a hard link is the same inode: nothing of its own to chown
    refused(t, await cli(['identity', 'import-sas-key'], `${Buffer.alloc(32, 7).toString('base64')}\n`), 'import-sas-key');
    rmSync(path.join(identityDir, 'keys', 'sas.json'));
    unchanged(t, 'import-sas-key onto a hard link');
  });

  await t.test('a key record is a FIFO: refused, without hanging', async (t) => {
    const fifo = path.join(identityDir, 'keys', 'evil.json');
    await promisify(execFile)('mkfifo', [fifo]);
    lchownSync(fifo, NOBODY.uid, NOBODY.gid);
    t.ok(lstatSync(fifo).isFIFO());
    refused(t, await cli(['identity', 'show']), 'show');
    rmSync(path.join(identityDir, 'keys', 'evil.json'));
    t.equal((await cli(['identity', 'show'])).code, 0, 'without the FIFO it works');
  });

  await t.test('the device secret is a link to a root-owned file', async (t) => {
    const secret = path.join(identityDir, 'device.secret');
    renameSync(secret, `${secret}.saved`);
    plant(secret, (p) => symlinkSync(victimFile, p));
    refused(t, await cli(['identity', 'csr', '--key', 'tls', '--subject', 'CN=x']), 'csr (reads the device secret)');
    unchanged(t, 'reading the device secret through a link');
    rmSync(secret);
    renameSync(`${secret}.saved`, secret);
  });

  await t.test('the identity directory itself is a link to a root-owned directory', async (t) => {
    const other = path.join(base, 'state2');
    mkdirSync(other, { mode: 0o750 });
    chownSync(other, NOBODY.uid, NOBODY.gid);
    plant(path.join(other, 'identity'), (p) => symlinkSync(victimDir, p));
    const config2 = path.join(base, 'guardian2.yaml');
    writeFileSync(config2, stringify({
      version: 1, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } }, buses: BUSES,
      gateway: { id: 'gw-root', stateDir: other }, identity: { backend: 'pluton-sim' },
    }));
    refused(t, await runCli(['identity', 'init', '--config', config2]), 'init');
    unchanged(t, 'init into a linked identity directory');
  });

  unchanged(t, 'after every attack');
});
