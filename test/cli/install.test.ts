// Installing the `guardian` command as the README says (npm install -g from the checkout, offline),
// and bin/guardian.js without a built dist/: one clear line, exit 1, nothing built behind the user's back.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { childEnv, GUARDIAN_BIN, type CliResult } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

const CHECKOUT = fileURLToPath(new URL('../../', import.meta.url));

function run(cmd: string, args: readonly string[], timeoutMs = 120000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')} did not finish in ${timeoutMs} ms`)); }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

t.test('bin/guardian.js without dist/: GUARDIAN_E_NOT_BUILT with the directory, exit 1, nothing built', async (t) => {
  const root = await tmpDir(t, 'guardian-unbuilt-');
  mkdirSync(join(root, 'bin'));
  copyFileSync(GUARDIAN_BIN, join(root, 'bin', 'guardian.js'));
  copyFileSync(join(CHECKOUT, 'package.json'), join(root, 'package.json'));
  for (const args of [['--version'], ['run', '--config', '/nonexistent.yaml']]) {
    const res = await run(process.execPath, [join(root, 'bin', 'guardian.js'), ...args]);
    t.equal(res.code, 1, `guardian ${args.join(' ')}: exit 1`);
    t.equal(res.stderr, `guardian: GUARDIAN_E_NOT_BUILT: guardian is not built: run \`npm run build\` (or \`npm install\`, which builds it) in ${root}/\n`, 'one clear line naming the directory');
    t.equal(res.stdout, '');
  }
  t.same(readdirSync(root).sort(), ['bin', 'package.json'], 'no dist/ appeared: nothing was built');
});

t.test('npm install -g --offline from the checkout puts a working `guardian` on the PATH', async (t) => {
  t.ok(existsSync(join(CHECKOUT, 'dist', 'cli', 'entry.js')), 'the checkout is built (npm install ran prepare)');
  const prefix = await tmpDir(t, 'guardian-prefix-');
  const install = await run('npm', ['install', '-g', '--offline', '--no-audit', '--no-fund', '--prefix', prefix, CHECKOUT], 300000);
  t.equal(install.code, 0, install.stderr);
  const command = join(prefix, 'bin', 'guardian');
  t.equal(realpathSync(command), realpathSync(GUARDIAN_BIN), 'the command is the checkout\'s bin/guardian.js (a link: nothing copied)');
  const version = await run(command, ['--version']);
  t.equal(version.code, 0, version.stderr);
  const pkg = JSON.parse(readFileSync(join(CHECKOUT, 'package.json'), 'utf8')) as { version: string };
  t.equal(version.stdout, `${pkg.version}\n`);
  const help = await run(command, ['check-config', '--help']);
  t.equal(help.code, 0, help.stderr);
  t.match(help.stdout, /^guardian check-config — /);
  const check = await run(command, ['check-manifest', join(CHECKOUT, 'config', 'app_manifest.example.json')]);
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /: OK \(/, 'it runs the whole CLI through the link');
});
