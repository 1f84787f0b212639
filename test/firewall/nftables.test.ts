// The OS layer: `guardian firewall apply` loads the rendered nftables ruleset in a network
// namespace; a process of the service user reaches what the manifest allows (an address
// with its port, a host name by its current addresses), is refused everything else, and
// the rule counters show both; other users are not affected; `--watch` follows a host
// name to its new address. Also the systemd drop-in for the same manifest.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { GUARDIAN_BIN } from '../fixtures/cli.js';
import { killChild, sleep, tmpDir } from '../fixtures/ports.js';

const NFT = '/usr/sbin/nft';
const SERVICE_UID = 4242;

function run(cmd: string[], opts: { ok?: boolean } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd[0] as string, cmd.slice(1), { encoding: 'utf8', timeout: 20_000 });
  const result = { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  if (opts.ok === true && result.code !== 0) throw new Error(`${cmd.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result;
}

void t.test('nftables in a network namespace: allowed connects, denied is refused, counters count', async (t) => {
  const ns = `guardian-t-${randomBytes(3).toString('hex')}`;
  const nsEtc = `/etc/netns/${ns}`;
  mkdirSync(nsEtc, { recursive: true });
  writeFileSync(join(nsEtc, 'hosts'), '127.0.0.1 localhost\n127.0.0.1 plc.test\n');
  run(['ip', 'netns', 'add', ns], { ok: true });
  t.teardown(() => { run(['ip', 'netns', 'del', ns]); rmSync(nsEtc, { recursive: true, force: true }); });
  const inNs = (cmd: string[]): string[] => ['ip', 'netns', 'exec', ns, ...cmd];
  const nsArgs = (cmd: string[]): string[] => inNs(cmd).slice(1);
  run(inNs(['ip', 'link', 'set', 'lo', 'up']), { ok: true });
  run(inNs(['ip', 'addr', 'add', '127.0.0.2/8', 'dev', 'lo']));

  const listeners: ChildProcess[] = [];
  t.teardown(async () => { for (const l of listeners) await killChild(l); });
  const listen = (address: string, port: number): void => {
    listeners.push(spawn('ip', nsArgs(['socat', '-u', `TCP-LISTEN:${port},bind=${address},fork,reuseaddr`, 'OPEN:/dev/null']), { stdio: 'ignore' }));
  };
  listen('127.0.0.1', 7001); // allowed by address and port
  listen('127.0.0.1', 7002); // same address, another port: not allowed
  listen('127.0.0.1', 7003); // plc.test:7003, allowed by name
  listen('127.0.0.2', 7003); // where plc.test moves to
  await sleep(500);

  const dir = await tmpDir(t);
  const manifest = join(dir, 'app_manifest.json');
  writeFileSync(manifest, JSON.stringify({
    SchemaVersion: 1, Name: 'nft-test', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f',
    Capabilities: { AllowedConnections: ['127.0.0.1:7001', 'plc.test:7003'], AllowedTcpServerPorts: [502] },
  }));

  const apply = spawn('ip', nsArgs([process.execPath, GUARDIAN_BIN, 'firewall', 'apply', '--manifest', manifest, '--user', String(SERVICE_UID), '--watch', '--interval', '1']), { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => killChild(apply));
  let applyOut = '';
  apply.stdout.on('data', (d: Buffer) => { applyOut += d.toString(); });
  apply.stderr.on('data', (d: Buffer) => { applyOut += d.toString(); });
  for (let i = 0; i < 100 && !applyOut.includes('loaded table inet guardian'); i++) await sleep(100);
  t.match(applyOut, /loaded table inet guardian from /, 'apply loaded the ruleset');

  const connect = (address: string, port: number, uid = SERVICE_UID): number =>
    run(inNs(['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'socat', '-u', 'OPEN:/dev/null', `TCP:${address}:${port},connect-timeout=2`])).code;
  const counter = (name: string): number => {
    const out = run(inNs([NFT, '-j', 'list', 'counter', 'inet', 'guardian', name]), { ok: true }).stdout;
    const entry = (JSON.parse(out) as { nftables: { counter?: { packets: number } }[] }).nftables.find((x) => x.counter !== undefined);
    return entry?.counter?.packets ?? -1;
  };

  t.equal(connect('127.0.0.1', 7001), 0, 'the service user reaches an allowed address and port');
  t.equal(connect('127.0.0.1', 7003), 0, 'and an allowed host name at its current address');
  const allowed = counter('allowed_out');
  t.ok(allowed >= 2, `allowed_out counted them (${allowed})`);
  t.equal(counter('denied_out'), 0, 'nothing denied yet');
  t.not(connect('127.0.0.1', 7002), 0, 'the same address on another port is refused');
  t.not(connect('127.0.0.2', 7003), 0, 'an address the name does not have is refused');
  const denied = counter('denied_out');
  t.ok(denied >= 2, `denied_out counted the refusals (${denied})`);
  t.equal(connect('127.0.0.1', 7002, 0), 0, 'other users are not affected by the service rules');

  writeFileSync(join(nsEtc, 'hosts'), '127.0.0.1 localhost\n127.0.0.2 plc.test\n'); // in place: the netns bind mount sees it
  for (let i = 0; i < 100 && !applyOut.includes('dns sets updated'); i++) await sleep(100);
  t.match(applyOut, /dns sets updated: plc\.test = 127\.0\.0\.2/, 'apply --watch noticed the new address');
  t.equal(connect('127.0.0.2', 7003), 0, 'the name is reachable at its new address');
  t.not(connect('127.0.0.1', 7003), 0, 'and no longer at the old one');
  t.ok(counter('denied_out') > denied, 'counted');

  const dropIn = run(['node', GUARDIAN_BIN, 'firewall', 'render', '--systemd', '--manifest', manifest]);
  t.equal(dropIn.code, 0, dropIn.stderr);
  t.match(dropIn.stdout, /\[Service\]\nIPAddressDeny=any\nIPAddressAllow=127\.0\.0\.1 .*\nSocketBindDeny=any\nSocketBindAllow=tcp:502\nDevicePolicy=closed\nDeviceAllow=\nDeviceAllow=\/dev\/tpmrm0 rw\n$/);
});
