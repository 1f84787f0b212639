import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { systemBinary } from '../src/core/system-bin.js';
import { loadManifest } from '../src/firewall/manifest.js';
import { renderSystemd } from '../src/firewall/render.js';
import { TPM_TOOLS } from '../src/identity/tpm/tools.js';

const run = promisify(execFile);
const UNITS = ['systemd/guardian.service', 'systemd/guardian-firewall.service'] as const;

/** Every value of a setting in a unit file (a setting may be given several times). */
function values(unit: string, key: string): string[] {
  return [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1] ?? '');
}

t.test('the units pass systemd-analyze verify', async (t) => {
  for (const unit of UNITS) {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', unit]);
    t.equal(stdout + stderr, '', `${unit}: no warnings`);
  }
});

t.test('the unit runs Guardian as its own user, validates the config first, restarts, and stops with SIGTERM', async (t) => {
  const unit = readFileSync('systemd/guardian.service', 'utf8');
  t.match(unit, /^User=guardian$/m);
  t.match(unit, /^ExecStartPre=\/usr\/bin\/node \/opt\/guardian\/bin\/guardian\.js check-config \/etc\/guardian\/guardian\.yaml$/m);
  t.match(unit, /^ExecStart=\/usr\/bin\/node \/opt\/guardian\/bin\/guardian\.js run --config \/etc\/guardian\/guardian\.yaml$/m);
  t.match(unit, /^Restart=always$/m);
  t.match(unit, /^KillSignal=SIGTERM$/m);
  t.match(unit, /^StateDirectory=guardian$/m);
});

async function exposure(path: string): Promise<number> {
  // Exits non-zero above the threshold (in tenths: 20 = 2.0); the score is the last line.
  const { stdout } = await run('systemd-analyze', ['security', '--offline=yes', '--threshold=20', '--no-pager', path]);
  const score = /Overall exposure level for [\w-]+\.service: (\d+\.\d+)/.exec(stdout);
  if (score === null) throw new Error(`no score printed for ${path}: ${stdout}`);
  return Number(score[1]);
}

t.test('the sandbox: systemd-analyze security scores both units at most 2.0', async (t) => {
  for (const unit of UNITS) {
    const score = await exposure(unit);
    t.ok(score <= 2.0, `${unit}: exposure ${score} <= 2.0`);
  }
  const unit = readFileSync('systemd/guardian.service', 'utf8');
  for (const line of ['CapabilityBoundingSet=', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'DevicePolicy=closed', 'NoNewPrivileges=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK', 'SystemCallFilter=@system-service', 'SystemCallArchitectures=native', 'RestrictNamespaces=yes']) {
    t.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), line);
  }
  t.notMatch(unit, /^MemoryDenyWriteExecute=yes$/m, "not MemoryDenyWriteExecute: V8's JIT needs it");
});

t.test('the base unit is closed without the drop-in: no IP peer, no bind, nothing executable but what Guardian runs, bounded memory and tasks', async (t) => {
  const unit = readFileSync('systemd/guardian.service', 'utf8');
  t.same(values(unit, 'IPAddressDeny'), ['any'], 'IPAddressDeny=any');
  t.same(values(unit, 'IPAddressAllow'), [], 'and no IPAddressAllow= of its own (not even localhost)');
  t.same(values(unit, 'SocketBindDeny'), ['any'], 'SocketBindDeny=any');
  t.same(values(unit, 'SocketBindAllow'), [], 'and no SocketBindAllow= of its own');
  t.same(values(unit, 'NoExecPaths'), ['/'], 'NoExecPaths=/');
  const execPaths = values(unit, 'ExecPaths').flatMap((v) => v.split(/\s+/));
  const covered = (file: string): boolean => execPaths.some((p) => { const dir = p.replace(/^-/, ''); return file === dir || file.startsWith(`${dir}/`); });
  for (const needed of ['/usr/bin/node', '/usr/bin/systemd-notify']) t.ok(covered(needed), `${needed} is executable`);
  for (const tool of TPM_TOOLS) {
    const path = systemBinary(tool);
    t.ok(covered(path) && covered(realpathSync(path)), `${tool} (${path} → ${realpathSync(path)}) is executable`);
  }
  t.notOk(covered('/usr/bin/sh') || covered('/bin/sh') || covered('/var/lib/guardian/x') || covered('/tmp/x'), 'a shell, the state directory and /tmp are not');
  const mem = /^(\d+)M$/.exec(values(unit, 'MemoryMax')[0] ?? '');
  t.ok(mem !== null && Number(mem[1]) >= 256 && Number(mem[1]) <= 512, `MemoryMax= set for a Pi (${values(unit, 'MemoryMax').join()})`);
  const tasks = Number(values(unit, 'TasksMax')[0]);
  t.ok(tasks >= 32 && tasks <= 256, `TasksMax= set (${tasks})`);
});

t.test('guardian-firewall.service: a dynamic user with only CAP_NET_ADMIN, a system call filter, nothing executable but node and nft', async (t) => {
  const unit = readFileSync('systemd/guardian-firewall.service', 'utf8');
  t.same(values(unit, 'DynamicUser'), ['yes']);
  t.same(values(unit, 'CapabilityBoundingSet'), ['CAP_NET_ADMIN']);
  t.same(values(unit, 'SystemCallFilter'), ['@system-service', '~@privileged @mount @swap @reboot @raw-io @module @debug @cpu-emulation @obsolete']);
  t.same(values(unit, 'NoExecPaths'), ['/']);
  t.same(values(unit, 'ExecPaths'), ['/usr/bin/node /usr/sbin/nft /usr/lib /opt/guardian/node_modules']);
});

t.test('the rendered drop-in on top of the base unit: verify reads it without a complaint, the exposure stays <= 2.0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'guardian-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const manifestPath = join(dir, 'app_manifest.json');
  writeFileSync(manifestPath, JSON.stringify({
    SchemaVersion: 1, Name: 'unit-test', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f',
    Capabilities: { AllowedConnections: ['broker.plant.example:8883', '10.20.0.0/16', '[fd00::10]:8883'], AllowedTcpServerPorts: [8080], AllowedUdpServerPorts: [1700], Uart: ['/dev/ttyUSB0'] },
  }));
  const dropIn = renderSystemd(loadManifest(manifestPath), {
    resolved: new Map([['broker.plant.example', ['192.0.2.10', '2001:db8::10']]]), resolvers: ['192.0.2.53'], source: manifestPath, devices: ['/dev/tpmrm0'],
  });
  t.match(dropIn, /^IPAddressAllow=10\.20\.0\.0\/16 fd00::10 192\.0\.2\.10 2001:db8::10 192\.0\.2\.53$/m);
  t.match(dropIn, /^SocketBindAllow=tcp:8080\nSocketBindAllow=udp:1700$/m);
  const unitDir = join(dir, 'units');
  mkdirSync(join(unitDir, 'guardian.service.d'), { recursive: true });
  writeFileSync(join(unitDir, 'guardian.service'), readFileSync('systemd/guardian.service'));
  const env = { ...process.env, SYSTEMD_UNIT_PATH: `${unitDir}:` };
  const verify = async (conf: string): Promise<string> => {
    writeFileSync(join(unitDir, 'guardian.service.d', 'firewall.conf'), conf);
    const { stdout, stderr } = await run('systemd-analyze', ['verify', join(unitDir, 'guardian.service')], { env });
    return stdout + stderr;
  };
  t.match(await verify('[Service]\nIPAddressAllow=not-an-address\n'), /firewall\.conf:2: .*ignoring/, 'control: verify reads the drop-in and reports a bad line');
  t.equal(await verify(dropIn), '', 'the rendered drop-in: no complaint');
  const { stdout } = await run('systemd-analyze', ['security', '--offline=yes', '--threshold=20', '--no-pager', join(unitDir, 'guardian.service')], { env });
  const score = Number(/Overall exposure level for guardian\.service: (\d+\.\d+)/.exec(stdout)?.[1]);
  t.ok(score <= 2.0, `with the drop-in: exposure ${score} <= 2.0`);
});
