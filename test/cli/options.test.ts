// Option errors through the real (built) CLI: options that exclude each other, need another or are
// missing, bad values; and, in-process, a property over every command's option spec.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import type { Test } from 'tap';
import { demoConfigText, demoManifestText } from '../../src/cli/demo/demo.js';
import { parseCommand } from '../../src/cli/args.js';
import { COMMAND_SPECS } from '../../src/cli/commands.js';
import { hasCode } from '../../src/core/errors.js';
import { childEnv, collect, GUARDIAN_BIN, runCli, type CliResult } from '../fixtures/cli.js';

const USAGE = /^guardian: GUARDIAN_E_USAGE: /;

/** Run at most four CLI processes at a time (a shared machine). */
async function inBatches<T>(jobs: readonly (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += 4) out.push(...(await Promise.all(jobs.slice(i, i + 4).map((job) => job()))));
  return out;
}

/** Each command line exits 2 with GUARDIAN_E_USAGE and its message (and never echoes the test password). */
async function expectUsageErrors(t: Test, cases: readonly [readonly string[], RegExp][]): Promise<void> {
  const results = await inBatches(cases.map(([args]) => () => runCli(args)));
  for (const [i, [args, message]] of cases.entries()) {
    const res = results[i] ?? { code: null, stdout: '', stderr: '' };
    t.equal(res.code, 2, `${args.join(' ')}: exit 2`);
    t.match(res.stderr, USAGE, `${args.join(' ')}: GUARDIAN_E_USAGE`);
    t.match(res.stderr, message, `${args.join(' ')}: ${res.stderr.split('\n')[0] ?? ''}`);
    t.notMatch(res.stderr, /hunter2/, `${args.join(' ')}: the password is not echoed`);
  }
}

t.test('options that exclude each other, need another, or are missing; bad values', async (t) => {
  const cases: [readonly string[], RegExp][] = [
    [['firewall', 'render', '--nftables', '--user', 'nobody', '--cgroup', 'x'], /--user and --cgroup exclude each other/],
    [['firewall', 'render', '--nftables', '--systemd'], /needs exactly one of --nftables and --systemd/],
    [['firewall', 'render'], /needs exactly one of --nftables and --systemd/],
    [['firewall', 'render', '--systemd', '--user', 'nobody'], /--user only applies with --nftables/],
    [['firewall', 'render', '--systemd', '--cgroup', 'system.slice/guardian.service'], /--cgroup only applies with --nftables/],
    [['firewall', 'apply', '--user', 'nobody', '--cgroup', 'x'], /--user and --cgroup exclude each other/],
    [['firewall', 'apply', '--interval', '5'], /--interval only applies with --watch/],
    [['firewall', 'apply', '--watch', '--interval', '0'], /option --interval must be a whole number of seconds >= 1 \(got '0'\)/],
    [['firewall', 'apply', '--watch', '--interval', 'abc'], /option --interval must be .*\(got 'abc'\)/],
    [['firewall', 'render', '--nftables', '--user', 'a b'], /option --user must be a user name or a numeric uid/],
    [['firewall', 'render', '--nftables', '--cgroup', 'x"; flush ruleset'], /option --cgroup must be a cgroup v2 path/],
    [['check-config', 'a.yaml', 'b.yaml'], /guardian check-config: takes one argument \(FILE\); extra: 'b.yaml'/],
    [['check-config', '--config', 'a.yaml', 'b.yaml'], /give FILE either as an argument or with --config, not both/],
    [['run', '--config', 'a.yaml', 'b.yaml'], /give FILE either as an argument or with --config, not both/],
    [['check-manifest', '--manifest', 'a.json', 'b.json'], /give FILE either as an argument or with --manifest, not both/],
    [['run', '--config'], /option --config needs a value \(FILE\)/],
    [['run', '--config', '--allow-preload'], /option --config needs a value \(FILE\)/],
    [['run', '--allow-preload=yes'], /option --allow-preload takes no value/],
    [['run', '--confg', 'x.yaml'], /unknown option '--confg' \(did you mean --config\?\)/],
    [['demo', '--port', 'abc'], /option --port must be a TCP port 1-65535 \(got 'abc'\)/],
    [['demo', '--port', '70000'], /option --port must be a TCP port 1-65535/],
    [['watch', '--url', 'http://127.0.0.1'], /option --url must be a broker URL: unsupported scheme 'http:\/\/'/],
    [['watch', '--topic', 'a/#/b'], /option --topic must be an MQTT topic filter/],
    [['identity', 'csr', '--key', 'bogus', '--subject', 'CN=x'], /option --key must be identity or tls \(got 'bogus'\)/],
    [['identity', 'csr'], /guardian identity csr: needs --subject DN/],
    [['identity', 'attest'], /guardian identity attest: needs --nonce HEX/],
    [['identity', 'attest', '--nonce', 'xyz'], /option --nonce must be 1-32 bytes in hex/],
    [['identity', 'attest', '--nonce', '00', '--pcrs', 'sha256:x'], /option --pcrs must be a PCR selection/],
    [['identity', 'install-cert'], /guardian identity install-cert: needs FILE/],
    [['identity', '--config', 'x.yaml', 'show'], /guardian identity: the command comes first/],
    [['help', 'run', 'x'], /'run' has no subcommands/],
  ];
  await expectUsageErrors(t, cases);
});


t.test('property: for every command, an option it does not take and an argument too many are usage errors naming them', (t) => {
  const seed = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);
  const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
  const property = fc.property(fc.constantFrom(...COMMAND_SPECS), name, fc.array(fc.stringMatching(/^[a-z0-9./]{1,8}$/), { minLength: 1, maxLength: 4 }), (spec, option, extra) => {
    const taken = (spec.options as readonly string[]).includes(option) || option === 'help';
    if (!taken) {
      let err: unknown;
      try {
        parseCommand(spec, [`--${option}`]);
      } catch (caught) {
        err = caught;
      }
      if (!hasCode(err, 'GUARDIAN_E_USAGE') || !err.message.includes(`guardian ${spec.path}: unknown option '--${option}'`)) return false;
    }
    const args = [...Array.from({ length: spec.positionals?.length ?? 0 }, (_, i) => `p${i}`), ...extra];
    try {
      parseCommand(spec, args);
      return false;
    } catch (caught) {
      return hasCode(caught, 'GUARDIAN_E_USAGE') && caught.message.includes(`extra: '${extra[0] ?? ''}'`);
    }
  });
  t.doesNotThrow(() => fc.assert(property, { seed, numRuns: 500 }), `seed ${seed} (rerun with FC_SEED=${seed})`);
  t.end();
});

/** The built CLI with extra node flags and environment (runCli takes neither). */
function cliWith(nodeArgs: readonly string[], args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return collect(spawn(process.execPath, [...nodeArgs, GUARDIAN_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(env) }));
}

t.test('an option given twice, --help with a bad option, watch --url by the broker URL rules, --as-user with no such user', async (t) => {
  const cases: [readonly string[], RegExp][] = [
    [['check-config', '--config', 'a.yaml', '--config', 'b.yaml'], /option --config is given more than once: give it once/],
    [['check-config', '-c', 'a.yaml', '--config', 'b.yaml'], /option --config is given more than once/],
    [['identity', 'show', '--json', '--json'], /guardian identity show: option --json is given more than once/],
    [['run', '--help', '--bogus'], /guardian run: unknown option '--bogus'/],
    [['run', '--help', '--log-format', 'xml'], /option --log-format must be one of/],
    [['watch', '--url', 'mqtt://x:0'], /option --url must be a broker URL: .*port 0 is out of range/],
    [['watch', '--url', 'ws://127.0.0.1:9001'], /option --url must be a broker URL: .*WebSocket \(ws:\/\/\) is not supported/],
    [['watch', '--url', 'mqtt://127.0.0.1/path'], /option --url must be a broker URL: .*must not have a path/],
    [['watch', '--url', 'mqtt:admin:hunter2@127.0.0.1:1883'], /option --url must be a broker URL: .*has no scheme/],
    [['watch', '--url', 'mqtt//admin:hunter2@127.0.0.1:1883'], /option --url must be a broker URL/],
    [['watch', '--url', 'mqtt://admin:hunter2@127.0.0.1:0'], /port 0 is out of range \(1-65535\) \(got 'mqtt:\/\/\*\*\*@127\.0\.0\.1:0'\)/],
    [['check-config', '--as-user', 'nosuchuser', 'a.yaml'], /--as-user nosuchuser: no such user in \/etc\/passwd; see `guardian check-config --help`/],
  ];
  await expectUsageErrors(t, cases);
  const helpOk = await runCli(['run', '--help', '--log-format', 'json']);
  t.equal(helpOk.code, 0, '--help with valid options prints the usage');
  t.match(helpOk.stdout, /^guardian run — /);
});

t.test('GUARDIAN_DEMO_PORT is checked like --port and named', async (t) => {
  for (const command of ['demo', 'watch']) {
    const res = await cliWith([], command === 'demo' ? ['demo', '--allow-preload'] : [command], { GUARDIAN_DEMO_PORT: 'abc' });
    t.equal(res.code, 2, `${command}: exit 2`);
    t.match(res.stderr, USAGE);
    t.match(res.stderr, `guardian ${command}: the environment variable GUARDIAN_DEMO_PORT must be a TCP port 1-65535 (got 'abc'); see \`guardian ${command} --help\``);
    t.notMatch(res.stderr, /--port must/, 'it does not blame --port');
  }
});

t.test('check-config warns that run refuses preloaded code, unless --allow-preload', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'guardian-preload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ports = { broker: 18830, simulator: 15020 };
  const config = join(dir, 'guardian.yaml');
  writeFileSync(config, demoConfigText(ports, dir));
  writeFileSync(join(dir, 'app_manifest.json'), demoManifestText(ports));
  const preload = join(dir, 'preload.cjs');
  writeFileSync(preload, '// preloaded\n');
  const warned = await cliWith(['--require', preload], ['check-config', config]);
  t.equal(warned.code, 0, warned.stderr);
  t.match(warned.stdout, /: OK \(1 bus, 1 device, 9 points\)\n$/, 'singular and plural counts');
  t.match(warned.stderr, /^warning: GUARDIAN_E_PRELOAD: code is preloaded \(.*--require.*\): `guardian run` with this environment refuses to start/m);
  const allowed = await cliWith(['--require', preload], ['check-config', config, '--allow-preload']);
  t.equal(allowed.code, 0, allowed.stderr);
  t.notMatch(allowed.stderr, /GUARDIAN_E_PRELOAD/, 'checked for run --allow-preload: no warning');
  const run = await cliWith(['--require', preload], ['run', config]);
  t.equal(run.code, 1, 'and run in that environment does refuse');
  t.match(run.stderr, /GUARDIAN_E_PRELOAD/);
});
