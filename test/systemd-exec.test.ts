// NoExecPaths=/ with the units' ExecPaths=, tried for real: the test applies what systemd
// does for them in a private mount namespace (every mount noexec, the ExecPaths bind-mounted
// executable again; /opt/guardian is this checkout) and runs the unit's node there. Guardian
// must still work — its native addons load, systemd-notify and the tpm2 tools run (the
// firewall: nft) — and nothing else runs: not a shell, not a binary dropped in /tmp or /dev/shm.
// (systemd is not PID 1 on the test machines, so the unit itself cannot be started here.)
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { childEnv } from './fixtures/cli.js';
import { systemBinary } from '../src/core/system-bin.js';

const ROOT = process.cwd();

function execPaths(unit: string): { path: string; optional: boolean }[] {
  return [...unit.matchAll(/^ExecPaths=(.*)$/gm)].flatMap((m) => (m[1] ?? '').split(/\s+/)).filter((p) => p !== '').map((p) => ({
    path: p.replace(/^-/, '').replace(/^\/opt\/guardian(?=\/|$)/, ROOT), optional: p.startsWith('-'),
  }));
}

/** Runs `node -e check` inside a mount namespace set up as systemd sets up the unit's NoExecPaths=/ and ExecPaths=. */
function underUnit(unitFile: string, check: string, args: readonly string[]): { code: number; stdout: string; stderr: string } {
  const unit = readFileSync(unitFile, 'utf8');
  if (!/^NoExecPaths=\/$/m.test(unit)) throw new Error(`${unitFile} has no NoExecPaths=/`);
  const node = /^ExecStart=(\S+)/m.exec(unit)?.[1] ?? '';
  // systemd follows symlinks (tpm2_sign → tpm2): the mount is on the target
  const paths = execPaths(unit).map((p) => (existsSync(p.path) ? { ...p, path: realpathSync(p.path) } : p));
  // Binds first, then every other mount noexec (/ last: mount itself is not executable after that).
  const script = [
    'set -e',
    ...paths.map((p) => `${p.optional ? `[ ! -e '${p.path}' ] || ` : ''}mount --bind '${p.path}' '${p.path}'`),
    `exec_paths='${paths.map((p) => p.path).join(' ')}'`,
    'mps=$(awk \'{print $5}\' /proc/self/mountinfo | sort -u)',
    'for mp in $mps; do',
    '  case " $exec_paths / " in *" $mp "*) continue;; esac',
    '  mount -o remount,bind,noexec "$mp" 2>/dev/null || echo "not remounted: $mp" >&2',
    'done',
    'mount -o remount,bind,noexec /',
    `exec '${node}' -e "$CHECK" -- "$@"`,
  ].join('\n');
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], {
    encoding: 'utf8', timeout: 60_000, cwd: ROOT, env: childEnv({ CHECK: check }),
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The check run as the unit's node: tries each thing and prints { name: 'ok' | error code }. */
const CHECK = `
const { execFileSync } = require('node:child_process');
const out = {};
const tryIt = (name, fn) => { try { fn(); out[name] = 'ok'; } catch (err) { out[name] = err.code ?? String(err); } };
const [what, ...files] = process.argv.slice(1);
for (const spec of files) {
  const [name, file, ...argv] = spec.split(' ');
  tryIt(name, () => execFileSync(file, argv, { stdio: 'ignore' }));
}
if (what === 'guardian') {
  tryIt('better-sqlite3', () => { const Db = require(process.cwd() + '/node_modules/better-sqlite3'); new Db(':memory:').prepare('select 1').get(); });
  tryIt('serialport bindings', () => require(process.cwd() + '/node_modules/@serialport/bindings-cpp'));
}
console.log(JSON.stringify(out));
`;

function dropped(t: Test): { tmp: string; shm: string } {
  const dir = mkdtempSync(join(tmpdir(), 'guardian-exec-'));
  const shmDir = mkdtempSync('/dev/shm/guardian-exec-');
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); rmSync(shmDir, { recursive: true, force: true }); });
  const tmp = join(dir, 'payload');
  const shm = join(shmDir, 'payload');
  for (const f of [tmp, shm]) { copyFileSync('/usr/bin/true', f); chmodSync(f, 0o755); }
  return { tmp, shm };
}

void t.test('guardian.service: node, its addons, systemd-notify and the tpm2 tools run; a shell and dropped binaries do not', async (t) => {
  const { tmp, shm } = dropped(t);
  const r = underUnit('systemd/guardian.service', CHECK, ['guardian',
    'systemd-notify /usr/bin/systemd-notify --version', `tpm2_getcap ${systemBinary('tpm2_getcap')} --version`, `tpm2_sign ${systemBinary('tpm2_sign')} --version`,
    'sh /bin/sh -c true', `tmp ${tmp}`, `shm ${shm}`, 'nft /usr/sbin/nft --version']);
  t.equal(r.code, 0, `node ran under the unit's mounts: ${r.stderr}`);
  const got = JSON.parse(r.stdout) as Record<string, string>;
  t.same(got, {
    'systemd-notify': 'ok', tpm2_getcap: 'ok', tpm2_sign: 'ok', 'better-sqlite3': 'ok', 'serialport bindings': 'ok',
    sh: 'EACCES', tmp: 'EACCES', shm: 'EACCES', nft: 'EACCES',
  }, 'exactly what Guardian runs is executable');
});

void t.test('guardian-firewall.service: node and nft run; nothing else', async (t) => {
  const { tmp } = dropped(t);
  const r = underUnit('systemd/guardian-firewall.service', CHECK, ['firewall',
    'nft /usr/sbin/nft --version', 'sh /bin/sh -c true', `tmp ${tmp}`, 'systemd-notify /usr/bin/systemd-notify --version']);
  t.equal(r.code, 0, `node ran under the unit's mounts: ${r.stderr}`);
  t.same(JSON.parse(r.stdout), { nft: 'ok', sh: 'EACCES', tmp: 'EACCES', 'systemd-notify': 'EACCES' }, 'exactly node and nft');
});
