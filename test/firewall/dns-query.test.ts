// The DNS exception of the nftables ruleset is no tunnel: only queries for the manifest's
// names (and those names under the resolver's search domains) reach the name servers.
// A property test runs the rendered match (the `@th,…` compares, as text) against DNS
// queries built here independently; a network-namespace test sends real datagrams as
// the service user — an allowed name in any case passes, a tunnel name, a longer name,
// extra bytes, a query on a socket whose earlier query was answered, and TCP are
// dropped and counted (denied_dns).
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { queryMatch } from '../../src/firewall/render/dns-query.js';
import { applyFirewall, asUser, NETNS_PEER, netns, waitForOutput } from '../fixtures/netns.js';
import { tmpDir } from '../fixtures/ports.js';

const SERVICE_UID = 4242;

/** A DNS query over UDP (UDP header included, as `@th` sees it), built without the code under test. */
function query(name: string, opts: { id?: number; qtype?: number; rd?: boolean; edns?: boolean; trailing?: Buffer; flags?: number } = {}): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([Buffer.byteLength(l)]), Buffer.from(l, 'latin1')]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(opts.id ?? 0x1234, 0);
  header.writeUInt16BE(opts.flags ?? (opts.rd === false ? 0 : 0x0100), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(opts.edns === true ? 1 : 0, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(opts.qtype ?? 1, 0);
  tail.writeUInt16BE(1, 2);
  const opt = opts.edns === true ? Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  const dns = Buffer.concat([header, ...labels, Buffer.from([0]), tail, opt, opts.trailing ?? Buffer.alloc(0)]);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(53, 2);
  udp.writeUInt16BE(8 + dns.length, 4);
  return Buffer.concat([udp, dns]);
}

/** Evaluates the nft match text of queryMatch() on a packet: `udp length <= N` and `@th,OFF,LEN [& MASK] == VALUE` (bits). */
function matches(rule: string, packet: Buffer): boolean {
  const length = /udp length <= (\d+)/.exec(rule);
  if (length === null || packet.readUInt16BE(4) > Number(length[1])) return false;
  const compares = [...rule.matchAll(/@th,(\d+),(\d+)(?: & 0x([0-9a-f]+))? == 0x([0-9a-f]+)/g)];
  if (compares.length < 4) throw new Error(`no compares in ${rule}`);
  return compares.every(([, off, len, mask, value]) => {
    const bytes = Number(len) / 8;
    const at = Number(off) / 8;
    if (at + bytes > packet.length) return false;
    const got = BigInt(`0x${packet.subarray(at, at + bytes).toString('hex')}`);
    const m = mask === undefined ? (1n << BigInt(bytes * 8)) - 1n : BigInt(`0x${mask}`);
    return (got & m) === BigInt(`0x${value}`);
  });
}

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
const hostName = fc.array(label, { minLength: 1, maxLength: 6 }).map((ls) => ls.join('.')).filter((n) => n.length <= 253 && !/^[0-9.]+$/.test(n));
const mixCase = (name: string, flips: readonly boolean[]): string => [...name].map((c, i) => (flips[i % Math.max(flips.length, 1)] === true ? c.toUpperCase() : c)).join('');

void t.test('property: the rendered match accepts exactly a query for the name (any case, any type), nothing longer or different', async (t) => {
  const seed = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);
  const run = <Ts extends unknown[]>(name: string, prop: fc.IProperty<Ts>): void => {
    const out = fc.check(prop, { seed, numRuns: 300 });
    t.notOk(out.failed, `${name} (fast-check seed ${seed}; rerun with FC_SEED=${seed})${out.failed ? `: ${fc.defaultReportMessage(out) ?? ''}` : ''}`);
  };
  run('a query for the name passes', fc.property(hostName, fc.array(fc.boolean(), { minLength: 1 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 1, max: 0xffff }), fc.boolean(), fc.boolean(),
    (name, flips, id, qtype, rd, edns) => matches(queryMatch(name), query(mixCase(name, flips), { id, qtype, rd, edns }))));
  run('a query for another name is dropped', fc.property(hostName, hostName, (allowed, other) => {
    fc.pre(allowed !== other);
    return !matches(queryMatch(allowed), query(other));
  }));
  run('the name under more labels (a tunnel label in front) or with a label after is dropped', fc.property(hostName, label, (name, extra) => {
    fc.pre(`${extra}.${name}`.length <= 253);
    return !matches(queryMatch(name), query(`${extra}.${name}`)) && !matches(queryMatch(name), query(`${name}.${extra}`));
  }));
  run('bytes after the question beyond an option-less EDNS record are dropped', fc.property(hostName, fc.uint8Array({ minLength: 12, maxLength: 200 }), (name, extra) =>
    !matches(queryMatch(name), query(name, { trailing: Buffer.from(extra) })) && !matches(queryMatch(name), query(name, { edns: true, trailing: Buffer.from(extra.subarray(0, 1)) }))));
  run('an answer or another opcode is not a query', fc.property(hostName, fc.integer({ min: 0x0800, max: 0xffff }), (name, flags) => {
    fc.pre((flags & 0xf800) !== 0);
    return !matches(queryMatch(name), query(name, { flags }));
  }));
  t.notOk(matches(queryMatch('plc.test'), query('plc.tesu')), 'one letter off');
  t.notOk(matches(queryMatch('plc.test'), query('plc.test', { qtype: 16 }).fill(0x7a, 20 + 12, 20 + 13)), 'QCLASS other than IN');
  t.ok(matches(queryMatch('plc.test'), query('PLC.Test', { qtype: 28 })), 'AAAA, upper case');
  t.notOk(matches(queryMatch('plc.test'), query('plc.test').subarray(0, 26)), 'a cut-off query');
});

void t.test('in a network namespace: only the listed names reach the name server, as queries on UDP', async (t) => {
  const ns = await netns(t, { hosts: '127.0.0.1 localhost\n', resolv: 'nameserver 127.0.0.53\nsearch corp.test\n' });
  const dir = await tmpDir(t);
  chmodSync(dir, 0o755);
  const manifest = join(dir, 'app_manifest.json');
  writeFileSync(manifest, JSON.stringify({
    SchemaVersion: 1, Name: 'dns-test', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f',
    Capabilities: { AllowedConnections: ['plc.test:502', 'broker.example.com'] },
  }), { mode: 0o644 });
  const resolver = await ns.server('udp', '127.0.0.53', 53); // root: an echoing stand-in that prints what arrives
  await ns.server('tcp', '127.0.0.53', 53);
  // the stand-in resolver answers no name: without --allow-unresolved apply refuses (GUARDIAN_E_FIREWALL_UNRESOLVED)
  await applyFirewall(ns, manifest, ['--user', String(SERVICE_UID), '--allow-unresolved']);
  let seen = '';
  resolver.child.stdout?.on('data', (d: Buffer) => { seen += d.toString(); });
  const dnsOnly = (b: Buffer): string => b.subarray(8).toString('hex');

  const allowed = [query('plc.test'), query('PLC.Test', { qtype: 28 }), query('plc.test.corp.test', { edns: true })] as const;
  const tunnel = 'nbswy3dpeb3w64tmmqqgc3tbmfzxk2ldn5xgcidunbswy3dp.ebqw4ztpe.t.exfil.example';
  const refused = [
    query(tunnel, { qtype: 16 }), // a TXT query for a name that carries data
    query(`x${'a'.repeat(62)}.${'b'.repeat(63)}.${'c'.repeat(63)}.plc.test`), // the allowed name under tunnel labels
    query('plc.test', { trailing: Buffer.alloc(64, 0x41) }), // extra bytes after the question
    query('plc.test', { flags: 0x8180 }), // shaped as an answer
    query('evil.example'),
  ];
  const before = { allowed: ns.counter('allowed_dns'), denied: ns.counter('denied_dns') };
  const lastAllowed = waitForOutput(resolver.child, new RegExp(`RECV ${dnsOnly(allowed[2])}`), 'resolver');
  const out = ns.run(asUser(SERVICE_UID, [process.execPath, NETNS_PEER, 'udp', '127.0.0.53', '53', ...[allowed[0], allowed[1], ...refused, allowed[2]].map(dnsOnly)]), { ok: true });
  const results = JSON.parse(out.stdout) as { sent: string; answered: boolean }[];
  t.same(results.map((r) => r.answered), [true, true, false, false, false, false, false, true],
    'from one socket: the listed names are answered (also after a refusal, and on a flow already established), the others not');
  await lastAllowed; // the name server's output is complete up to the last allowed query (the refused ones came before it)
  for (const q of allowed) t.match(seen, `RECV ${dnsOnly(q)}`, 'the name server received the allowed query');
  for (const q of refused) t.notMatch(seen, dnsOnly(q), 'the name server never saw the refused one');
  t.equal(ns.counter('allowed_dns'), 3 + before.allowed, 'allowed_dns counted the three');
  t.equal(ns.counter('denied_dns'), before.denied + refused.length, 'denied_dns counted every refusal');

  const tcp = (uid: number): number => ns.run(asUser(uid, ['socat', '-u', 'OPEN:/dev/null', 'TCP:127.0.0.53:53,connect-timeout=3'])).code;
  t.not(tcp(SERVICE_UID), 0, 'TCP to the name server is refused for the service');
  t.equal(ns.counter('denied_dns'), before.denied + refused.length + 1, 'and counted');
  t.equal(tcp(0), 0, 'other users keep TCP 53');
});
