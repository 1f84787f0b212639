// Option errors through the real (built) CLI: options that exclude each other, need another or are
// missing, bad values; and, in-process, a property over every command's option spec.
import fc from 'fast-check';
import t from 'tap';
import { parseCommand } from '../../src/cli/args.js';
import { COMMAND_SPECS } from '../../src/cli/commands.js';
import { hasCode } from '../../src/core/errors.js';
import { runCli } from '../fixtures/cli.js';

const USAGE = /^guardian: GUARDIAN_E_USAGE: /;

/** Run at most four CLI processes at a time (a shared machine). */
async function inBatches<T>(jobs: readonly (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += 4) out.push(...(await Promise.all(jobs.slice(i, i + 4).map((job) => job()))));
  return out;
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
    [['watch', '--url', 'http://127.0.0.1'], /option --url must be an mqtt:\/\//],
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
  const results = await inBatches(cases.map(([args]) => () => runCli(args)));
  for (const [i, [args, message]] of cases.entries()) {
    const res = results[i] ?? { code: null, stdout: '', stderr: '' };
    t.equal(res.code, 2, `${args.join(' ')}: exit 2`);
    t.match(res.stderr, USAGE, `${args.join(' ')}: GUARDIAN_E_USAGE`);
    t.match(res.stderr, message, `${args.join(' ')}: ${res.stderr.split('\n')[0] ?? ''}`);
  }
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
