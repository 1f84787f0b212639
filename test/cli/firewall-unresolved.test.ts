// `guardian firewall render` / `apply` with a manifest host name that does not resolve: an error
// naming it (never a silently narrower rule set), unless --allow-unresolved. Names under .invalid
// never resolve (RFC 6761); localhost always does.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { runCli } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

async function manifest(t: Test, connections: string[]): Promise<string> {
  const file = join(await tmpDir(t), 'app_manifest.json');
  writeFileSync(file, JSON.stringify({ SchemaVersion: 1, Name: 'g', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: { AllowedConnections: connections } }));
  return file;
}
const HINT = '  A host name in the manifest does not resolve, so its firewall rules would be missing; fix the name or the DNS, or pass --allow-unresolved to render the rules without it.\n';

t.test('a name that does not resolve: render --systemd, render --nftables and apply exit 1 naming it', async (t) => {
  const file = await manifest(t, ['broker.invalid:8883', 'localhost:1883']);
  for (const args of [['render', '--systemd'], ['render', '--nftables'], ['apply']]) {
    const res = await runCli(['firewall', ...args, '--manifest', file]);
    t.equal(res.code, 1, `${args.join(' ')}: exit 1`);
    t.equal(res.stdout, '', `${args.join(' ')}: no rules printed or loaded`);
    t.equal(res.stderr, `guardian: GUARDIAN_E_FIREWALL_UNRESOLVED: ${file}: a host name does not resolve: broker.invalid (getaddrinfo ENOTFOUND broker.invalid); its rules would be missing\n${HINT}`);
  }
  const two = await runCli(['firewall', 'render', '--systemd', '--manifest', await manifest(t, ['a.invalid:1883', 'b.example.invalid'])]);
  t.equal(two.code, 1);
  t.match(two.stderr, /host names do not resolve: a\.invalid \(.*\), b\.example\.invalid \(.*\); their rules would be missing/, 'every name that does not resolve is named');
});

t.test('--allow-unresolved: a warning, and the rules without that name', async (t) => {
  const file = await manifest(t, ['broker.invalid:8883', 'localhost:1883']);
  const res = await runCli(['firewall', 'render', '--nftables', '--manifest', file, '--allow-unresolved']);
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stderr, 'guardian: broker.invalid does not resolve (getaddrinfo ENOTFOUND broker.invalid): no addresses for it until it does\n');
  t.match(res.stdout, /127\.0\.0\.1 \. 1883/, 'localhost is in the rules');
  t.notMatch(res.stdout, /8883/, 'the name that does not resolve has no rule');
});

t.test('names that resolve render without a warning', async (t) => {
  const file = await manifest(t, ['localhost:1883']);
  const res = await runCli(['firewall', 'render', '--systemd', '--manifest', file]);
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stderr, '');
  t.match(res.stdout, /^IPAddressAllow=.*127\.0\.0\.1/m);
});
