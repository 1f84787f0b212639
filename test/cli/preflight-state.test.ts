// What the mode bits do not show, through the real CLI (check-config, and run where it
// applies, give the same code and line): the state directory on a read-only mount or a
// pseudo file system (mountinfo), the config file itself as the service user, and a TCTI
// tpm2-tools cannot load (a config problem) against a TPM device that is not there (a warning).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import type { Test } from 'tap';
import { stringify } from 'yaml';
import { mountOf, mountProblem, parseMountinfo, type Mount } from '../../src/cli/state-dir.js';
import { parseConfig } from '../../src/config/load.js';
import { manifestFor } from '../../src/firewall/config-coverage.js';
import { TpmTools } from '../../src/identity/tpm/tools.js';
import { runCli } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

type Doc = Record<string, unknown>;

/** A plain-MQTT config in `dir` with its generated manifest; returns the config file. */
function writeConfig(dir: string, stateDir: string, extra: Doc = {}): string {
  const doc: Doc = {
    version: 1,
    gateway: { id: 'gw-state', stateDir },
    firewall: { manifest: path.join(dir, 'app_manifest.json') },
    upstream: { mqtt: { url: 'mqtt://127.0.0.1:18839' } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: 15029, devices: [{ name: 'press', unitId: 1, points: [{ name: 'p', table: 'holding', address: 0, type: 'uint16' }] }] }],
    ...extra,
  };
  const file = path.join(dir, 'guardian.yaml');
  writeFileSync(file, stringify(doc), { mode: 0o644 });
  writeFileSync(path.join(dir, 'app_manifest.json'), JSON.stringify(manifestFor(parseConfig(stringify(doc), file)), null, 2), { mode: 0o644 });
  return file;
}

/** check-config and run on the file: both exit 1 with the same first line, and `line` among stderr's lines. */
async function refusedAlike(t: Test, file: string, code: string, line: string): Promise<void> {
  const check = await runCli(['check-config', file]);
  const run = await runCli(['run', '--config', file]);
  t.equal(check.code, 1, `check-config exits 1: ${check.stderr}`);
  t.equal(run.code, 1, 'run exits 1');
  t.match(check.stderr.split('\n')[0], new RegExp(`^guardian: ${code}: `), 'the code');
  t.equal(run.stderr.split('\n')[0], check.stderr.split('\n')[0], 'run says what check-config says');
  t.ok(check.stderr.split('\n').includes(line), 'the line', { expected: line, stderr: check.stderr });
  t.ok(run.stderr.split('\n').includes(line), 'the same line from run');
  t.notMatch(run.stdout, /guardian starting/, 'nothing started');
}

t.test('a state directory on a read-only tmpfs is refused, naming the mount', async (t) => {
  const dir = await tmpDir(t, 'guardian-romnt-');
  const mnt = path.join(dir, 'romnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,mode=0700', 'tmpfs', mnt]);
  t.teardown(() => { execFileSync('umount', [mnt]); });
  for (const stateDir of [mnt, path.join(mnt, 'state')]) {
    const file = writeConfig(dir, stateDir);
    await refusedAlike(t, file, 'GUARDIAN_E_CONFIG_FILES',
      `gateway.stateDir: ${stateDir}: it is on ${mnt}, which is mounted read-only (tmpfs); the outbox and the journal are written there: use a writable file system or remount it rw`);
  }
});

t.test('a state directory on /proc or /sys is refused, naming the file system', async (t) => {
  const dir = await tmpDir(t, 'guardian-pseudo-');
  const file = writeConfig(dir, '/proc/self');
  const check = await runCli(['check-config', file]);
  t.equal(check.code, 1);
  t.ok(check.stderr.split('\n').includes('gateway.stateDir: /proc/self: it is on /proc, a proc file system, which cannot hold Guardian\'s files; use a directory on a disk (e.g. /var/lib/guardian)'), check.stderr);
  t.equal(mountProblem('/sys/x'), 'it is on /sys, a sysfs file system, which cannot hold Guardian\'s files; use a directory on a disk (e.g. /var/lib/guardian)', '/sys/x: does not exist, /sys holds it');
  t.equal(mountProblem(dir), undefined, 'a writable directory on a disk or tmpfs passes');
});

t.test('mountinfo: escaped mount points, the longest prefix holds a path, never a sibling with a common prefix', async (t) => {
  const info = [
    '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '23 22 0:22 / /proc rw,nosuid shared:2 - proc proc rw',
    '30 22 0:30 / /mnt/with\\040space ro,relatime - tmpfs tmpfs ro,mode=700',
    '31 22 0:31 / /data rw - xfs /dev/sdb1 ro',
  ].join('\n');
  const mounts = parseMountinfo(info);
  t.same(mounts.map((m) => m.point), ['/', '/proc', '/mnt/with space', '/data']);
  t.equal(mountOf('/mnt/with space/state', mounts)?.fsType, 'tmpfs');
  t.equal(mountOf('/procx/state', mounts)?.point, '/', 'a sibling that shares a prefix is not inside');
  t.ok(mountOf('/data/x', mounts)?.options.includes('ro'), 'ro in the super block options counts');
  const seed = Date.now() % 2 ** 31;
  const segment = fc.stringMatching(/^[a-z]{1,6}$/);
  fc.assert(fc.property(fc.array(fc.array(segment, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }), fc.array(segment, { maxLength: 6 }), (points, file) => {
    const all: Mount[] = [{ point: '/', fsType: 'ext4', options: ['rw'] }, ...points.map((p) => ({ point: `/${p.join('/')}`, fsType: 'tmpfs', options: ['rw'] }))];
    const target = `/${file.join('/')}`;
    const best = mountOf(target, all)!;
    const holds = (m: Mount): boolean => m.point === '/' || target === m.point || target.startsWith(`${m.point}/`);
    if (!holds(best)) throw new Error(`seed ${seed}: ${best.point} does not hold ${target}`);
    for (const m of all) if (holds(m) && m.point.length > best.point.length) throw new Error(`seed ${seed}: ${m.point} is longer than ${best.point}`);
  }), { seed, numRuns: 300 });
});

t.test('the config file itself is checked as the service user', async (t) => {
  const dir = await tmpDir(t, 'guardian-cfgmode-');
  chmodSync(dir, 0o755);
  const state = path.join(dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  chownSync(state, 65534, 65534);
  const file = writeConfig(dir, state);
  chmodSync(file, 0o600);
  const res = await runCli(['check-config', '--as-user', 'nobody', file]);
  t.equal(res.code, 1, res.stderr);
  t.match(res.stderr.split('\n')[0], /^guardian: GUARDIAN_E_CONFIG_FILES: /);
  t.ok(res.stderr.split('\n').includes(`config file: ${file}: not readable by user nobody (mode 0600, owner uid 0 gid 0)`), res.stderr);
  chmodSync(file, 0o644);
  const ok = await runCli(['check-config', '--as-user', 'nobody', file]);
  t.equal(ok.code, 0, `readable: OK (${ok.stderr})`);
});

t.test('a TCTI that cannot be loaded is a config problem; a TPM device that is not there a warning that says so', async (t) => {
  const bogus = await new TpmTools('bogus:nothing').run('tpm2_getcap', ['properties-fixed']).then(() => undefined, (err: unknown) => err);
  t.match(bogus, { code: 'GUARDIAN_E_TPM_TCTI' }, 'tpm2-tools cannot load the module');
  const missing = await new TpmTools('device:/dev/nonexistent').run('tpm2_getcap', ['properties-fixed']).then(() => undefined, (err: unknown) => err);
  t.match(missing, { code: 'GUARDIAN_E_TPM_UNAVAILABLE', context: { device: '/dev/nonexistent' } }, 'the module loads, the device is missing: transient');
  const dir = await tmpDir(t, 'guardian-tcti-');
  const sas = (tcti: string): Doc => ({
    identity: { backend: 'tpm', tpm: { tcti } },
    upstream: { mqtt: { url: 'mqtt://127.0.0.1:18839', username: 'gw-state', sas: { resourceUri: 'hub.example/devices/gw-state' } } },
  });
  const file = writeConfig(dir, path.join(dir, 'state'), sas('bogus:nothing'));
  await refusedAlike(t, file, 'GUARDIAN_E_TPM_TCTI',
    'guardian: GUARDIAN_E_TPM_TCTI: identity.tpm.tcti: "bogus:nothing": tpm2-tools cannot load a TCTI module named \'bogus\' (libtss2-tcti-bogus.so); use device:/dev/tpmrm0, swtpm:… or mssim:…');
  const warned = await runCli(['check-config', writeConfig(dir, path.join(dir, 'state'), sas('device:/dev/nonexistent'))]);
  t.equal(warned.code, 0, warned.stderr);
  t.match(warned.stderr, /^warning: identity: the key store is not available now \(GUARDIAN_E_TPM_UNAVAILABLE: \w+: the TPM device \/dev\/nonexistent \(identity\.tpm\.tcti "device:\/dev\/nonexistent"\) does not exist now/m);
});
