// Every command's help and option errors, through the real (built) CLI; and the README's "## CLI"
// section against what the CLI prints.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { runCli } from '../fixtures/cli.js';

/** Every command and subcommand the CLI has, with the options it takes (written out: the test fails when one is dropped). */
const COMMANDS: Readonly<Record<string, readonly string[]>> = {
  'run': ['--config', '--allow-preload', '--log-format'],
  'check-config': ['--config', '--as-user', '--allow-preload'],
  'check-manifest': ['--manifest'],
  'firewall render': ['--nftables', '--systemd', '--manifest', '--user', '--cgroup', '--allow-unresolved'],
  'firewall apply': ['--manifest', '--user', '--cgroup', '--watch', '--interval', '--allow-unresolved'],
  'firewall init': ['--config'],
  'identity init': ['--config'],
  'identity show': ['--config', '--json'],
  'identity csr': ['--config', '--subject', '--key'],
  'identity install-cert': ['--config'],
  'identity import-sas-key': ['--config'],
  'identity attest': ['--config', '--nonce', '--pcrs', '--out'],
  'identity activate-credential': ['--config'],
  'plan': ['--config'],
  'status': ['--config', '--json'],
  'demo': ['--port', '--allow-preload', '--log-format'],
  'watch': ['--url', '--topic'],
  'help': [],
  'version': [],
};

/** How many arguments each command takes (the rest take none). */
const ARGUMENTS: Readonly<Record<string, number>> = {
  'run': 1, 'check-config': 1, 'check-manifest': 1, 'firewall init': 1, 'plan': 1, 'status': 1,
  'identity install-cert': 1, 'identity activate-credential': 1, 'help': 2,
};

const words = (path: string): string[] => path.split(' ');

const USAGE = /^guardian: GUARDIAN_E_USAGE: /;

for (const [path, options] of Object.entries(COMMANDS)) {
  t.test(`guardian ${path}: --help, -h and help print its usage; unknown options and extra arguments are usage errors`, async (t) => {
    const takes = ARGUMENTS[path] ?? 0;
    // one machine shared by many: the five runs of a command go in parallel
    const [help, short, helpCmd, unknown, extra] = await Promise.all([
      runCli([...words(path), '--help']),
      runCli([...words(path), '-h']),
      runCli(['help', ...words(path)]),
      runCli([...words(path), '--no-such-option']),
      runCli([...words(path), ...Array.from({ length: takes + 1 }, (_, i) => `arg${i}`)]),
    ]);
    t.equal(help.code, 0, help.stderr);
    t.ok(help.stdout.startsWith(`guardian ${path} — `), 'its own usage, with its one-line description');
    t.match(help.stdout, new RegExp(`\\nUsage:\\n  guardian ${path}( |\\n)`));
    t.match(help.stdout, /\nExamples?:\n {2}(sudo )?guardian /, 'an example');
    const optionLines = (help.stdout.split('\nOptions:\n')[1]?.split('\n\n')[0] ?? '').split('\n');
    const listed = optionLines.map((l) => /^ {2}(?:-[a-z], )?(--[a-z][a-z-]*)/.exec(l)?.[1]).filter((o) => o !== undefined);
    t.same(listed.sort(), [...options, '--help'].sort(), 'it lists exactly the options it takes');
    t.equal(short.stdout, help.stdout, '-h is the same');
    t.equal(helpCmd.stdout, help.stdout, 'guardian help <command> is the same');

    t.equal(unknown.code, 2);
    t.match(unknown.stderr, USAGE);
    t.match(unknown.stderr, `guardian ${path}: unknown option '--no-such-option'; see \`guardian ${path} --help\``, 'it names the option, the command and its help');

    t.equal(extra.code, 2, `more than ${takes} argument(s)`);
    t.match(extra.stderr, USAGE);
    t.match(extra.stderr, `extra: 'arg${takes}'`, 'the extra argument is named');
  });
}

t.test('the overview, groups, unknown commands and the version', async (t) => {
  const bare = await runCli([]);
  t.equal(bare.code, 2, 'guardian alone: the overview, exit 2');
  t.match(bare.stdout, /^guardian \d+\.\d+\.\d+ — /);
  for (const path of Object.keys(COMMANDS)) t.match(bare.stdout, `\n  guardian ${path}`, `the overview names ${path}`);
  t.match(bare.stdout, /\nExit codes:\n {2}0 ok\n {2}1 failed.*\n {2}2 usage error\n {2}3 `run` stopped, but messages stayed in the outbox/);
  for (const help of [['help'], ['--help'], ['-h']]) {
    const res = await runCli(help);
    t.equal(res.code, 0);
    t.equal(res.stdout, bare.stdout, `${help.join(' ')} prints the overview`);
  }
  for (const group of ['firewall', 'identity']) {
    const none = await runCli([group]);
    t.equal(none.code, 2, `${group} without a command: exit 2`);
    t.ok(none.stdout.startsWith(`guardian ${group} — `), `${group}: the group's usage`);
    for (const path of Object.keys(COMMANDS).filter((p) => p.startsWith(`${group} `))) t.match(none.stdout, `\n  guardian ${path} `, `it lists ${path}`);
    const asked = await runCli([group, '--help']);
    t.equal(asked.code, 0);
    t.equal(asked.stdout, none.stdout);
    t.equal((await runCli(['help', group])).stdout, none.stdout);
  }
  const typo = await runCli(['stauts']);
  t.equal(typo.code, 2);
  t.equal(typo.stderr, "guardian: GUARDIAN_E_USAGE: unknown command 'stauts' (did you mean 'status'?)\n  The command line is wrong; run `guardian help`.\n");
  const helpTypo = await runCli(['help', 'chek-config']);
  t.equal(helpTypo.code, 2);
  t.match(helpTypo.stderr, /unknown command 'chek-config' \(did you mean 'check-config'\?\)/);
  const subTypo = await runCli(['firewall', 'rendr', '--nftables']);
  t.equal(subTypo.code, 2);
  t.match(subTypo.stderr, /unknown firewall command 'rendr' \(did you mean 'render'\?\)/);
  const helpSubTypo = await runCli(['help', 'identity', 'sho']);
  t.equal(helpSubTypo.code, 2);
  t.match(helpSubTypo.stderr, /unknown identity command 'sho' \(did you mean 'show'\?\)/);
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const version of [['--version'], ['-v'], ['version']]) {
    const res = await runCli(version);
    t.equal(res.code, 0);
    t.equal(res.stdout, `${pkg.version}\n`, `${version.join(' ')} prints the version`);
  }
});

/** The `guardian …` lines of the README's "## CLI" code block. */
function readmeUsage(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.split('\n## CLI\n')[1]?.split('\n## ')[0] ?? '';
  const block = section.split('```')[1] ?? '';
  return block.split('\n').filter((l) => l.startsWith('guardian '));
}

const optionsOf = (line: string): string[] => [...new Set(line.match(/--[a-z][a-z-]*/g) ?? [])].sort();

t.test("the README's CLI section matches what the CLI prints: every command, every option", async (t) => {
  const overview = await runCli(['help']);
  const printed = (overview.stdout.split('\nUsage:\n')[1]?.split('\n\n')[0] ?? '').split('\n').map((l) => l.trim());
  const documented = readmeUsage();
  t.same(documented, printed, 'the README lists the usage lines `guardian help` prints, in its order');
  for (const path of Object.keys(COMMANDS)) {
    const line = documented.find((l) => l === `guardian ${path}` || l.startsWith(`guardian ${path} `));
    t.ok(line !== undefined, `the README documents guardian ${path}`);
    t.same(optionsOf(line ?? ''), [...(COMMANDS[path] ?? [])].sort(), `the README names exactly the options guardian ${path} accepts`);
  }
});
