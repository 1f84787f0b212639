// Issue 13, finding 19: a config (or manifest) that is not a regular file, or is over 1 MiB,
// is refused at once with CONFIG_READ / MANIFEST_READ: /dev/zero and a FIFO never hang.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config/load.js';
import { GuardianError } from '../../src/core/errors.js';
import { loadManifest } from '../../src/firewall/manifest.js';
import { runCli } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

const codeOf = (f: () => unknown): { code: string; message: string } => {
  try {
    f();
  } catch (err) {
    if (err instanceof GuardianError) return { code: err.code, message: err.message };
    throw err;
  }
  return { code: 'accepted', message: '' };
};

void t.test('not a regular file, or too large: refused at once', async (t) => {
  const dir = await tmpDir(t, 'guardian-read-');
  const fifo = path.join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  const big = path.join(dir, 'big.yaml');
  writeFileSync(big, `version: 1\n${'#'.repeat(1024 * 1024)}\n`);
  for (const [file, what] of [['/dev/zero', 'a character device'], [fifo, 'a named pipe'], [dir, 'a directory']] as const) {
    const c = codeOf(() => loadConfig(file));
    t.equal(c.code, 'GUARDIAN_E_CONFIG_READ', `${file}: CONFIG_READ`);
    t.match(c.message, `not a regular file (${what})`);
    const m = codeOf(() => loadManifest(file));
    t.equal(m.code, 'GUARDIAN_E_MANIFEST_READ', `${file}: MANIFEST_READ`);
  }
  const b = codeOf(() => loadConfig(big));
  t.equal(b.code, 'GUARDIAN_E_CONFIG_READ');
  t.match(b.message, /more than the 1048576 a config or manifest may have/);
  const cli = await runCli(['check-config', '/dev/zero']);
  t.equal(cli.code, 1, 'check-config /dev/zero exits 1');
  t.match(cli.stderr, /^guardian: GUARDIAN_E_CONFIG_READ: cannot read config \/dev\/zero: not a regular file \(a character device\)\n/);
  const run = await runCli(['run', '--config', '/dev/zero']);
  t.equal(run.code, 1, 'run --config /dev/zero exits 1');
  t.match(run.stderr, /GUARDIAN_E_CONFIG_READ: cannot read config \/dev\/zero: not a regular file/);
});
