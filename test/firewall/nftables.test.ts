// The OS layer: `guardian firewall apply` (not root: only CAP_NET_ADMIN) loads the rendered
// nftables ruleset in a network namespace; a process of the service user reaches what the
// manifest allows (an address with its port, a host name by its current addresses), is
// refused everything else, and the rule counters show both; other users are not affected;
// `--watch` follows a host name to its new address. The server side: a socket of the service
// user answers only on the manifest's server ports — a listener on another port, and an
// inspector opened on a free port by injected code, never complete a handshake (denied_in).
// Also the systemd drop-in for the same manifest.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { GUARDIAN_BIN } from '../fixtures/cli.js';
import { applyFirewall, asUser, NETNS_PEER, netns, waitForOutput, type Netns } from '../fixtures/netns.js';
import { tmpDir } from '../fixtures/ports.js';

const SERVICE_UID = 4242;

async function manifestFile(t: Parameters<typeof tmpDir>[0], capabilities: object): Promise<string> {
  const dir = await tmpDir(t);
  chmodSync(dir, 0o755); // the firewall runs as another user
  const file = join(dir, 'app_manifest.json');
  writeFileSync(file, JSON.stringify({ SchemaVersion: 1, Name: 'nft-test', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f', Capabilities: capabilities }), { mode: 0o644 });
  return file;
}

function connect(ns: Netns, address: string, port: number, uid = SERVICE_UID): number {
  return ns.run(asUser(uid, ['socat', '-u', 'OPEN:/dev/null', `TCP:${address}:${port},connect-timeout=3`])).code;
}

void t.test('nftables in a network namespace: allowed connects, denied is refused, counters count', async (t) => {
  const ns = await netns(t, { hosts: '127.0.0.1 localhost\n127.0.0.1 plc.test\n' });
  ns.run(['ip', 'addr', 'add', '127.0.0.2/8', 'dev', 'lo']);
  await ns.server('tcp', '127.0.0.1', 7001); // allowed by address and port
  await ns.server('tcp', '127.0.0.1', 7002); // same address, another port: not allowed
  await ns.server('tcp', '127.0.0.1', 7003); // plc.test:7003, allowed by name
  await ns.server('tcp', '127.0.0.2', 7003); // where plc.test moves to

  const manifest = await manifestFile(t, { AllowedConnections: ['127.0.0.1:7001', 'plc.test:7003'], AllowedTcpServerPorts: [502] });
  const apply = await applyFirewall(ns, manifest, ['--user', String(SERVICE_UID), '--interval', '1']);

  t.equal(connect(ns, '127.0.0.1', 7001), 0, 'the service user reaches an allowed address and port');
  t.equal(connect(ns, '127.0.0.1', 7003), 0, 'and an allowed host name at its current address');
  const allowed = ns.counter('allowed_out');
  t.ok(allowed >= 2, `allowed_out counted them (${allowed})`);
  t.equal(ns.counter('denied_out'), 0, 'nothing denied yet');
  t.not(connect(ns, '127.0.0.1', 7002), 0, 'the same address on another port is refused');
  t.not(connect(ns, '127.0.0.2', 7003), 0, 'an address the name does not have is refused');
  const denied = ns.counter('denied_out');
  t.ok(denied >= 2, `denied_out counted the refusals (${denied})`);
  t.equal(connect(ns, '127.0.0.1', 7002, 0), 0, 'other users are not affected by the service rules');

  const updated = waitForOutput(apply, /dns sets updated: plc\.test = 127\.0\.0\.2/, 'apply --watch');
  writeFileSync(join(ns.etc, 'hosts'), '127.0.0.1 localhost\n127.0.0.2 plc.test\n'); // in place: the netns bind mount sees it
  t.match(await updated, /dns sets updated: plc\.test = 127\.0\.0\.2/, 'apply --watch noticed the new address');
  t.equal(connect(ns, '127.0.0.2', 7003), 0, 'the name is reachable at its new address');
  t.not(connect(ns, '127.0.0.1', 7003), 0, 'and no longer at the old one');
  t.ok(ns.counter('denied_out') > denied, 'counted');

  // in the namespace, where plc.test resolves (outside it the name does not: GUARDIAN_E_FIREWALL_UNRESOLVED)
  const dropIn = ns.run(['node', GUARDIAN_BIN, 'firewall', 'render', '--systemd', '--manifest', manifest]);
  t.equal(dropIn.code, 0, dropIn.stderr);
  t.match(dropIn.stdout, /\[Service\]\nIPAddressAllow=127\.0\.0\.1 .*\nSocketBindAllow=tcp:502\nDevicePolicy=closed\nDeviceAllow=\nDeviceAllow=\/dev\/tpmrm0 rw\n$/);
  t.notMatch(dropIn.stdout, /^\w+Deny=/m, 'the drop-in only adds allows: the denials are in the base unit');
});

void t.test('server side by user: only the manifest\'s server ports answer; an inspector on a free port never does', async (t) => {
  const ns = await netns(t, { hosts: '127.0.0.1 localhost\n' });
  const manifest = await manifestFile(t, { AllowedConnections: [], AllowedTcpServerPorts: [7502], AllowedUdpServerPorts: [7510] });
  await applyFirewall(ns, manifest, ['--user', String(SERVICE_UID)]);

  await ns.server('tcp', '127.0.0.1', 7502, SERVICE_UID);
  await ns.server('tcp', '127.0.0.1', 7600, SERVICE_UID);
  const inspector = await ns.server('inspector', '127.0.0.1', 0, SERVICE_UID); // what injected code does: inspector.open(0)
  await ns.server('udp', '127.0.0.1', 7510, SERVICE_UID);
  const udpOther = await ns.server('udp', '127.0.0.1', 7610, SERVICE_UID);
  t.not(inspector.port, 7502, `the inspector listens on a port of its choosing (${inspector.port})`);

  t.equal(ns.counter('denied_in'), 0, 'nothing denied yet');
  t.equal(connect(ns, '127.0.0.1', 7502, 0), 0, 'a client reaches the service on its listed TCP port');
  t.not(connect(ns, '127.0.0.1', 7600, 0), 0, 'a listener of the service on an unlisted port never completes a handshake');
  t.not(connect(ns, '127.0.0.1', inspector.port, 0), 0, 'nor does the inspector: no debugger session for a local client');
  const deniedTcp = ns.counter('denied_in');
  t.ok(deniedTcp >= 2, `denied_in counted the refused handshakes (${deniedTcp})`);

  const probe = (port: number): { answered: boolean }[] =>
    JSON.parse(ns.run([process.execPath, NETNS_PEER, 'udp', '127.0.0.1', String(port), '70696e67'], { ok: true }).stdout) as { answered: boolean }[];
  const received = waitForOutput(udpOther.child, /RECV 70696e67/, 'udp server on 7610');
  t.same(probe(7510).map((r) => r.answered), [true], 'a datagram to the listed UDP port is answered');
  t.same(probe(7610).map((r) => r.answered), [false], 'a datagram to an unlisted UDP port gets no answer');
  await received; // by user, the datagram itself still arrives (the owner is unknown on input): documented
  t.ok(ns.counter('denied_in') > deniedTcp, 'denied_in counted the dropped answer');
});
