// Directories others may write, attacked as root: a group- or world-writable state
// directory (anyone in it could swap a checked file between the check and the use),
// and `identity attest --out DIR` aimed at a directory someone else prepared (a link to
// a root-owned directory, a directory of another user, a world-writable one, one in a
// world-writable non-sticky parent). Each is refused with GUARDIAN_E_IDENTITY_UNSAFE_PATH,
// logged, and leaves the target as it was.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { runCli, type CliResult } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

const BUSES = [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }];
const NOBODY = 65534;

function refused(t: Test, result: CliResult, what: string, file: string): void {
  t.equal(result.code, 1, `${what}: the command fails`);
  t.match(result.stderr, `GUARDIAN_E_IDENTITY_UNSAFE_PATH: refusing ${file}`, `${what}: with the stable code, naming ${file}`);
  const logged = result.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; err?: { code?: string } });
  t.ok(logged.some((l) => l.level === 'error' && l.err?.code === 'GUARDIAN_E_IDENTITY_UNSAFE_PATH'), `${what}: and a log line with the code`);
}

async function setup(t: Test, stateMode: number, stateOwner: number) {
  const base = await tmpDir(t);
  chmodSync(base, 0o755);
  const stateDir = path.join(base, 'state');
  mkdirSync(stateDir);
  chownSync(stateDir, stateOwner, stateOwner);
  chmodSync(stateDir, stateMode);
  const config = path.join(base, 'guardian.yaml');
  writeFileSync(config, stringify({
    version: 1, upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } }, buses: BUSES,
    gateway: { id: 'gw-dirs', stateDir }, identity: { backend: 'pluton-sim' },
  }));
  return { base, stateDir, cli: (args: string[]): Promise<CliResult> => runCli([...args, '--config', config], 30_000) };
}

t.test('a state directory others may write is refused', async (t) => {
  if (process.getuid?.() !== 0) {
    t.fail('this test performs the attack as root (the machine\'s tests run as root)');
    return;
  }
  for (const [mode, owner, who] of [[0o775, 0, 'root-owned, group-writable'], [0o777, NOBODY, 'service-user-owned, world-writable'], [0o770, NOBODY, 'service-user-owned, group-writable']] as const) {
    await t.test(who, async (t) => {
      const { stateDir, cli } = await setup(t, mode, owner);
      refused(t, await cli(['identity', 'init']), `init into a ${who} state directory`, stateDir);
      t.same(readdirSync(stateDir), [], 'nothing was created in it');
    });
  }
  await t.test('control: the same directory 0750 is used', async (t) => {
    const { stateDir, cli } = await setup(t, 0o750, NOBODY);
    const init = await cli(['identity', 'init']);
    t.equal(init.code, 0, init.stderr);
    t.equal(lstatSync(path.join(stateDir, 'identity')).uid, NOBODY, 'created as the directory\'s owner');
  });
});

t.test('identity attest --out: only a new directory, or one only the caller can write', async (t) => {
  if (process.getuid?.() !== 0) {
    t.fail('this test performs the attack as root (the machine\'s tests run as root)');
    return;
  }
  const { base, cli } = await setup(t, 0o750, NOBODY);
  t.equal((await cli(['identity', 'init'])).code, 0);
  const victim = path.join(base, 'etc-like');
  mkdirSync(victim, { mode: 0o755 });
  const attest = (out: string): Promise<CliResult> => cli(['identity', 'attest', '--nonce', '00ff', '--out', out]);

  // the attacker's preparations, as an unprivileged user would leave them
  const shared = path.join(base, 'shared'); // like /tmp without the sticky bit
  mkdirSync(shared);
  chmodSync(shared, 0o777);
  const sticky = path.join(base, 'sticky'); // like /tmp
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  const link = path.join(sticky, 'quote-link');
  symlinkSync(victim, link);
  const theirs = path.join(sticky, 'quote-theirs');
  mkdirSync(theirs, { mode: 0o700 });
  chownSync(theirs, NOBODY, NOBODY);
  const open = path.join(sticky, 'quote-open');
  mkdirSync(open);
  chmodSync(open, 0o777);

  refused(t, await attest(link), 'a link to a root-owned directory', link);
  t.same(readdirSync(victim), [], 'nothing was written through the link');
  refused(t, await attest(theirs), 'a directory of another user', theirs);
  t.same(readdirSync(theirs), [], 'nothing was written into it');
  refused(t, await attest(open), 'a world-writable directory', open);
  refused(t, await attest(path.join(shared, 'quote')), 'a directory in a world-writable parent without the sticky bit', shared);
  t.notOk(existsSync(path.join(shared, 'quote')), 'not even created there');

  // a fresh directory in a sticky parent passes the check and is created 0700; the
  // simulated Pluton store then refuses the quote itself (no TPM: its own code)
  const fresh = path.join(sticky, 'quote-new');
  const ok = await attest(fresh);
  t.match(ok.stderr, /GUARDIAN_E_IDENTITY_UNSUPPORTED/, 'past the directory check');
  t.equal(lstatSync(fresh).mode & 0o7777, 0o700, 'created 0700');
  t.equal(lstatSync(fresh).uid, 0, 'owned by the caller');
});
