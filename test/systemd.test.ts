import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);

t.test('systemd/guardian.service passes systemd-analyze verify', async (t) => {
  const { stdout, stderr } = await run('systemd-analyze', ['verify', 'systemd/guardian.service']);
  t.equal(stdout + stderr, '', 'no warnings');
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

t.test('the sandbox: systemd-analyze security scores the unit at most 2.0', async (t) => {
  // Exits non-zero above the threshold (in tenths: 20 = 2.0); the score is the last line.
  const { stdout } = await run('systemd-analyze', ['security', '--offline=yes', '--threshold=20', '--no-pager', 'systemd/guardian.service']);
  const score = /Overall exposure level for guardian\.service: (\d+\.\d+)/.exec(stdout);
  t.ok(score !== null, 'a score is printed');
  t.ok(Number(score?.[1]) <= 2.0, `exposure ${score?.[1]} <= 2.0`);
  const unit = readFileSync('systemd/guardian.service', 'utf8');
  for (const line of ['CapabilityBoundingSet=', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'DevicePolicy=closed', 'NoNewPrivileges=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK', 'SystemCallFilter=@system-service', 'SystemCallArchitectures=native', 'RestrictNamespaces=yes']) {
    t.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), line);
  }
  t.notMatch(unit, /^MemoryDenyWriteExecute=yes$/m, "not MemoryDenyWriteExecute: V8's JIT needs it");
});
