// TLS files swapped for bad ones while `guardian run` is connected (mutual TLS through a
// link proxy to a real Mosquitto): the daemon holds what it read and checked at start, so a
// forced reconnect still succeeds with that, and nothing crashes; reading the swapped files
// again (what a restart of the upstream does) is a coded GUARDIAN_E_TLS_FILE naming each
// file, never OpenSSL's error thrown inside a connect.
import { cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { readTlsFiles } from '../../src/upstream/mqtt/tls.js';
import { startGateway } from '../fixtures/gateway.js';
import { startMosquitto } from '../fixtures/mosquitto.js';
import { makePki } from '../fixtures/pki.js';
import { tmpDir } from '../fixtures/ports.js';
import { startProxy } from '../fixtures/proxy.js';

const BUSES = [{ name: 'b', type: 'tcp', host: '127.0.0.1', port: 1, devices: [{ name: 'd', unitId: 1, points: [{ name: 'p', table: 'coil', address: 0, type: 'bool' }] }] }];

t.test('bad TLS files swapped in after start: a reconnect uses what was checked at start; a re-read is GUARDIAN_E_TLS_FILE', async (t) => {
  const dir = await tmpDir(t, 'guardian-tls-swap-');
  const pki = await makePki(await tmpDir(t, 'guardian-pki-'));
  const files = { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'client.pem'), key: path.join(dir, 'client.key') };
  cpSync(pki.caCert, files.ca);
  cpSync(pki.clientCert, files.cert);
  cpSync(pki.clientKey, files.key);
  const broker = await startMosquitto(t, { tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
  const proxy = await startProxy(t, broker.port);
  const gw = await startGateway(t, {
    version: 1,
    gateway: { id: 'gw-swap' },
    upstream: { mqtt: { url: `mqtts://127.0.0.1:${proxy.port}`, tls: { ...files, servername: 'localhost' }, reconnect: { initialMs: 20, maxMs: 100 } } },
    buses: BUSES,
  });
  await gw.waitForLog((l) => l.msg === 'connected to broker');

  writeFileSync(files.key, 'not a pem\n');
  writeFileSync(files.ca, '{"not": "a certificate"}\n');
  const connects = (): number => gw.lines.filter((l) => l.msg === 'connected to broker').length;
  proxy.down();
  const before = gw.lines.length;
  await gw.waitForLog((l) => gw.lines.indexOf(l) >= before && typeof l['retryInMs'] === 'number'); // the link is cut: a reconnect is scheduled
  proxy.up();
  await gw.waitForLog(() => connects() >= 2);
  t.equal(gw.child.exitCode, null, 'still running');
  t.notOk(gw.lines.some((l) => l.level === 'fatal' || (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_INTERNAL'), 'no fatal line, no internal error');
  t.notMatch(gw.stderr(), /PEM routines|unhandledRejection/, 'no OpenSSL error on stderr');

  const reread = await readTlsFiles({ ...files, identity: false }).then(() => undefined, (err: unknown) => err);
  t.match(reread, { code: 'GUARDIAN_E_TLS_FILE', message: /upstream\.mqtt\.tls\.ca: .*ca\.pem: it holds no PEM certificate.*upstream\.mqtt\.tls\.key: .*client\.key: it holds no PEM private key/ }, 'a re-read names both files, with a code');
});
