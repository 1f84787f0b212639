// `guardian identity import-sas-key`: the key is checked (strict base64, 16-64 bytes) before
// the key store sees it, and no message ever contains it. Real CLI runs on the simulated Pluton store.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { sasKeyFromText } from '../../src/cli/identity.js';
import { hasCode } from '../../src/core/errors.js';
import { runCli } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

const b64 = (n: number): string => randomBytes(n).toString('base64');

t.test('import-sas-key refuses what is not an IoT Hub key, never echoing it, and imports one that is', async (t) => {
  const dir = await tmpDir(t);
  const config = path.join(dir, 'guardian.yaml');
  writeFileSync(config, stringify({
    version: 1, gateway: { id: 'gw-sas', stateDir: path.join(dir, 'state') }, identity: { backend: 'pluton-sim' },
    upstream: { mqtt: { url: 'mqtt://127.0.0.1:1883' } },
    buses: [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }],
  }));
  const init = await runCli(['identity', 'init', '--config', config]);
  t.equal(init.code, 0, init.stderr);
  const good = b64(32);
  const bad: { name: string; stdin: string; reason: RegExp }[] = [
    { name: 'nothing', stdin: '', reason: /nothing was read from stdin/ },
    { name: 'a line break inside', stdin: `${good.slice(0, 20)}\n${good.slice(20)}\n`, reason: /white space in it/ },
    { name: 'a space inside', stdin: `${good.slice(0, 20)} ${good.slice(20)}`, reason: /white space in it/ },
    { name: 'padding missing', stdin: good.replace(/=+$/, ''), reason: /not a multiple of 4/ },
    { name: 'base64url', stdin: randomBytes(32).toString('base64url').replace(/^./, '-'), reason: /base64url/ },
    { name: 'not base64 at all', stdin: 'HostName=hub.example.net;DeviceId=gw;SharedAccessKey=abc=', reason: /characters base64 does not use/ },
    { name: 'non-canonical padding bits', stdin: `${good.slice(0, 42)}B=`, reason: /not canonical base64/ },
    { name: '15 bytes', stdin: b64(15), reason: /decodes to 15 bytes; an IoT Hub symmetric key is 16-64 bytes/ },
    { name: '65 bytes', stdin: b64(65), reason: /decodes to 65 bytes/ },
  ];
  for (const c of bad) {
    const res = await runCli(['identity', 'import-sas-key', '--config', config], 30000, c.stdin);
    t.equal(res.code, 1, `${c.name}: exit 1`);
    t.match(res.stderr, /^guardian: GUARDIAN_E_KEYSTORE_INPUT: identity import-sas-key: /m, `${c.name}: the code`);
    t.match(res.stderr, c.reason, `${c.name}: the reason`);
    const secret = c.stdin.trim();
    if (secret.length >= 8) t.notOk(res.stderr.includes(secret.slice(4, secret.length - 4)) || res.stdout.includes(secret.slice(4, secret.length - 4)), `${c.name}: the key is not echoed`);
  }
  for (const key of [`${good}\n`, `${b64(16)}\r\n`, b64(64)]) {
    const res = await runCli(['identity', 'import-sas-key', '--config', config], 30000, key);
    t.equal(res.code, 0, res.stderr);
    t.equal(res.stdout, 'imported the SAS key into the pluton-sim key store\n');
    t.notOk(res.stderr.includes(key.trim()), 'the key is not logged');
  }
});

t.test('sasKeyFromText: every 16-64 byte key round-trips; any white space, lost padding or wrong length is KEYSTORE_INPUT without the key in it', async (t) => {
  const seed = Number.parseInt(process.env['FC_SEED'] ?? String(Date.now() % 1_000_000), 10);
  const roundTrip = fc.property(fc.uint8Array({ minLength: 16, maxLength: 64 }), fc.constantFrom('', '\n', '\r\n'), (bytes, eol) => {
    const text = Buffer.from(bytes).toString('base64');
    return sasKeyFromText(text + eol).equals(Buffer.from(bytes));
  });
  t.doesNotThrow(() => fc.assert(roundTrip, { seed, numRuns: 300 }), `round trip, seed ${seed} (rerun with FC_SEED=${seed})`);
  const refused = fc.property(
    fc.uint8Array({ minLength: 1, maxLength: 100 }), fc.nat(), fc.constantFrom(' ', '\t', '\n', 'drop-padding', 'length'),
    (bytes, at, how) => {
      const text = Buffer.from(bytes).toString('base64');
      let input: string;
      if (how === 'length') {
        if (bytes.length >= 16 && bytes.length <= 64) return true;
        input = text;
      } else if (how === 'drop-padding') {
        if (!text.endsWith('=')) return true;
        input = text.replace(/=+$/, '');
      } else {
        const i = 1 + (at % (text.length - 1 || 1));
        input = `${text.slice(0, i)}${how}${text.slice(i)}`;
      }
      try {
        sasKeyFromText(input);
        return false;
      } catch (err) {
        return hasCode(err, 'GUARDIAN_E_KEYSTORE_INPUT') && (text.length < 8 || !err.message.includes(text.slice(0, 8)));
      }
    },
  );
  t.doesNotThrow(() => fc.assert(refused, { seed, numRuns: 500 }), `refusals, seed ${seed} (rerun with FC_SEED=${seed})`);
});
