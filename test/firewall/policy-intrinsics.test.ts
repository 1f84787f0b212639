// The manifest policy, attacked in-process: its answers are compiled into private data read
// through built-ins captured before any dependency loaded (src/firewall/guard/primordials.ts).
// A property test asks the same questions before and while a shared built-in is replaced
// (Array, Set, Map, String, RegExp, Function.prototype.apply/call, Reflect.apply, the global
// String and Number, the array iterator): every answer stays the same. Plus the IPv4 "zone"
// (review doubt a): "127.0.0.2%x.attacker.example" is a name, never the IP literal.
import fc from 'fast-check';
import t from 'tap';
import { canonicalIp } from '../../src/firewall/ip.js';
import { parseManifest } from '../../src/firewall/manifest.js';
import { ConnectionPolicy } from '../../src/firewall/policy.js';

const manifest = parseManifest(JSON.stringify({
  SchemaVersion: 1, Name: 'p', ComponentId: '6f1c3b5e-2d4a-4c8b-9e7f-0a1b2c3d4e5f',
  Capabilities: {
    AllowedConnections: ['allowed.test:443', 'any.test', '127.0.0.2:1', '10.1.0.0/16:502', '[fd00::1]:8883', 'fd00:aa::/32'],
    AllowedTcpServerPorts: [502], AllowedUdpServerPorts: [5353],
  },
}));
const policy = new ConnectionPolicy(manifest);

type Tamper = readonly [string, object, PropertyKey, unknown];
const TAMPERS: readonly Tamper[] = [
  ['Array.prototype.some', Array.prototype, 'some', () => true],
  ['Array.prototype.includes', Array.prototype, 'includes', () => true],
  ['Array.prototype[Symbol.iterator]', Array.prototype, Symbol.iterator, function* () { yield 'allowed.test'; }],
  ['Set.prototype.has', Set.prototype, 'has', () => true],
  ['Map.prototype.get', Map.prototype, 'get', () => null],
  ['Map.prototype.has', Map.prototype, 'has', () => true],
  ['String.prototype.toLowerCase', String.prototype, 'toLowerCase', () => 'allowed.test'],
  ['String.prototype.slice', String.prototype, 'slice', () => '127.0.0.2'],
  ['String.prototype.indexOf', String.prototype, 'indexOf', () => -1],
  ['String.prototype.split', String.prototype, 'split', () => ['127', '0', '0', '2']],
  ['RegExp.prototype.exec', RegExp.prototype, 'exec', () => null],
  ['Function.prototype.apply', Function.prototype, 'apply', () => true],
  ['Function.prototype.call', Function.prototype, 'call', () => true],
  ['Reflect.apply', Reflect, 'apply', () => true],
  ['globalThis.String', globalThis, 'String', () => 'allowed.test'],
  ['globalThis.BigInt', globalThis, 'BigInt', () => 0n],
];

function answers(hosts: readonly string[], port: number): string {
  let out = '';
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i] as string;
    out += `${policy.allowsConnect(h, port) ? 1 : 0}${policy.allowsLookup(h) ? 1 : 0}`;
  }
  return `${out}${policy.allowsTcpListen(port) ? 1 : 0}${policy.allowsUdpBind(port) ? 1 : 0}`;
}

void t.test('property: no replaced built-in changes an answer of the policy', (t) => {
  const seed = Number(process.env['FC_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  const octet = fc.integer({ min: 0, max: 255 });
  const host = fc.oneof(
    fc.constantFrom('allowed.test', 'ALLOWED.test.', 'any.test', 'evil.test', '127.0.0.1', '127.0.0.2', '[fd00::1]', 'fd00:aa:1::9', '::ffff:127.0.0.2', '127.0.0.2%x.attacker.example', 'fe80::1%eth0'),
    fc.tuple(octet, octet, octet, octet).map((o) => o.join('.')),
    fc.tuple(octet, octet).map(([a, b]) => `10.1.${a}.${b}`),
    fc.domain(),
  );
  const port = fc.oneof(fc.constantFrom(1, 443, 502, 5353, 8883, 0), fc.integer({ min: 0, max: 65535 }));
  fc.assert(fc.property(fc.array(host, { minLength: 1, maxLength: 6 }), port, fc.integer({ min: 0, max: TAMPERS.length - 1 }), (hosts, p, which) => {
    const before = answers(hosts, p);
    const [, object, key, value] = TAMPERS[which] as Tamper;
    const saved = Object.getOwnPropertyDescriptor(object, key);
    Object.defineProperty(object, key, { value, writable: true, configurable: true });
    let during: string;
    try {
      during = answers(hosts, p);
    } finally {
      if (saved === undefined) Reflect.deleteProperty(object, key);
      else Object.defineProperty(object, key, saved);
    }
    return before === during;
  }), { seed, numRuns: 400 });
  t.pass(`fast-check seed ${seed}; rerun with FC_SEED=${seed}`);
  t.end();
});

void t.test('the answers themselves', (t) => {
  t.equal(policy.allowsConnect('allowed.test', 443), true);
  t.equal(policy.allowsConnect('allowed.test', 444), false);
  t.equal(policy.allowsConnect('10.1.200.3', 502), true, 'a block, its port');
  t.equal(policy.allowsConnect('10.2.0.1', 502), false);
  t.equal(policy.allowsConnect('::ffff:127.0.0.2', 1), true, 'IPv4-mapped IPv6 is the IPv4 address');
  t.equal(policy.allowsConnect('fd00:aa:ffff::1', 12345), true, 'an IPv6 block, any port');
  t.equal(policy.allowsLookup('127.0.0.2%x.attacker.example'), false, 'an IPv4 address with a "zone" is a name, not a literal: no lookup');
  t.equal(policy.allowsConnect('127.0.0.2%x.attacker.example', 1), false, 'nor a connection');
  t.equal(canonicalIp('127.0.0.2%x'), undefined, 'IPv4 has no zones');
  t.same(canonicalIp('[fe80::1%eth0]'), { family: 6, address: 'fe80:0000:0000:0000:0000:0000:0000:0001' }, 'an IPv6 zone is dropped');
  t.same(canonicalIp('::ffff:7f00:1'), { family: 4, address: '127.0.0.1' });
  t.end();
});
