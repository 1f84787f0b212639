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
