// The file-access computation behind check-config's "as the service's user": users
// and groups from passwd/group files, and `permits` against the kernel itself — a
// child running as nobody answers access(2) for files of random modes and owners
// (fast-check; a failure prints the seed, rerun with FC_SEED=<seed>).
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { lookupUser, permits } from '../../src/cli/file-access.js';
import { fileProblems } from '../../src/cli/preflight.js';
import { parseConfig } from '../../src/config/load.js';
import { makePki } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';

const SEED = Number(process.env['FC_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const NOBODY = 65534;

t.test('users and their groups from passwd and group files, with the unit\'s supplementary groups', async (t) => {
  const dir = await tmpDir(t);
  const passwd = path.join(dir, 'passwd');
  const group = path.join(dir, 'group');
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nguardian:x:990:990::/var/lib/guardian:/usr/sbin/nologin\n');
  writeFileSync(group, 'root:x:0:\ndialout:x:20:\ntss:x:105:guardian,other\nguardian:x:990:\n');
  t.same(lookupUser('guardian', ['dialout'], { passwd, group }), { name: 'guardian', uid: 990, gid: 990, groups: [990, 20, 105] });
  t.same(lookupUser('guardian', [], { passwd, group })?.groups, [990, 105], 'without SupplementaryGroups: the primary group and the groups listing it');
  t.equal(lookupUser('nosuch', [], { passwd, group }), undefined);
});

t.test('permits: the owner class decides alone; root reads and writes everything', async (t) => {
  const user = { name: 'u', uid: 1000, gid: 1000, groups: [1000, 20] };
  t.notOk(permits({ mode: 0o100077, uid: 1000, gid: 1000 }, user, 4), 'the owner without r is refused even when others may read');
  t.ok(permits({ mode: 0o100040, uid: 0, gid: 20 }, user, 4), 'a supplementary group');
  t.notOk(permits({ mode: 0o100604, uid: 0, gid: 20 }, user, 4), 'the group class without r is refused even when others may read');
  t.ok(permits({ mode: 0o100000, uid: 5, gid: 5 }, { ...user, uid: 0 }, 6), 'root reads and writes a mode 000 file');
  t.notOk(permits({ mode: 0o100644, uid: 5, gid: 5 }, { ...user, uid: 0 }, 1), 'root executes only what someone may execute');
});

t.test('permits agrees with the kernel (access(2) as nobody) on files of random modes and owners', async (t) => {
  t.comment(`fast-check seed ${SEED} (rerun with FC_SEED=${SEED})`);
  const nobody = lookupUser('nobody');
  if (nobody === undefined) throw new Error('this machine has no user nobody');
  const entry = fc.record({ mode: fc.integer({ min: 0, max: 0o777 }), owner: fc.constantFrom(0, NOBODY), group: fc.constantFrom(0, nobody.gid), want: fc.constantFrom(4, 2, 6) });
  try {
    await fc.assert(fc.asyncProperty(fc.array(entry, { minLength: 20, maxLength: 40 }), async (files) => {
      const dir = await tmpDir(t, 'guardian-access-');
      chmodSync(dir, 0o755);
      const names = files.map((f, i) => {
        const file = path.join(dir, `f${i}`);
        writeFileSync(file, 'x');
        chownSync(file, f.owner, f.group);
        chmodSync(file, f.mode);
        return file;
      });
      // one child as nobody answers for every file: the kernel's verdict
      const script = `const fs=require('fs');const r=[];for(const [f,w] of JSON.parse(process.argv[1])){try{fs.accessSync(f,w);r.push(true)}catch{r.push(false)}}process.stdout.write(JSON.stringify(r))`;
      const child = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '-e', script, JSON.stringify(names.map((f, i) => [f, files[i]!.want]))], { uid: NOBODY, gid: nobody.gid, encoding: 'utf8' });
      const kernel = JSON.parse(child.stdout) as boolean[];
      names.forEach((file, i) => {
        const ours = permits(statSync(file), nobody, files[i]!.want);
        if (ours !== kernel[i]) throw new Error(`${file} mode ${files[i]!.mode.toString(8)} owner ${files[i]!.owner}:${files[i]!.group} want ${files[i]!.want}: kernel ${kernel[i]}, permits ${ours}`);
      });
    }), { seed: SEED, numRuns: 5, endOnFailure: true });
    t.pass('permits = access(2) for nobody');
  } catch (err) {
    t.fail(`seed ${SEED}: ${err instanceof Error ? err.message : String(err)}`);
  }
});

t.test('a TPM\'s owner authorization is not a file the service must read (only identity init does); the Pluton device secret is', async (t) => {
  const dir = await tmpDir(t);
  chmodSync(dir, 0o755);
  const nobody = lookupUser('nobody')!;
  const doc = (identity: Record<string, unknown>): string => stringify({
    version: 1, gateway: { id: 'g', stateDir: path.join(dir, 'state') }, identity,
    upstream: { mqtt: { url: 'mqtts://127.0.0.1:8883', tls: { ca: path.join(dir, 'ca.pem'), identity: true } } },
    buses: [{ name: 'b', type: 'tcp', host: '127.0.0.1', devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }],
  });
  cpSync((await makePki(await tmpDir(t, 'guardian-pki-'))).caCert, path.join(dir, 'ca.pem')); // a real certificate: its contents are checked too
  chmodSync(path.join(dir, 'ca.pem'), 0o644);
  writeFileSync(path.join(dir, 'owner.auth'), 'hex:00', { mode: 0o600 });
  writeFileSync(path.join(dir, 'device.secret'), 'x'.repeat(32), { mode: 0o600 });
  const tpm = parseConfig(doc({ backend: 'tpm', tpm: { tcti: 'swtpm:host=127.0.0.1,port=9', ownerAuthFile: path.join(dir, 'owner.auth') } }));
  t.same(fileProblems(tpm, nobody).filter((l) => !l.startsWith('gateway.stateDir')), [], 'root-only owner authorization: no problem');
  const pluton = parseConfig(doc({ backend: 'pluton-sim', plutonSim: { secretFile: path.join(dir, 'device.secret') } }));
  t.same(fileProblems(pluton, nobody).filter((l) => !l.startsWith('gateway.stateDir')), [
    `identity.plutonSim.secretFile: ${path.join(dir, 'device.secret')}: not readable by user nobody (mode 0600, owner uid 0 gid 0)`,
  ]);
});
