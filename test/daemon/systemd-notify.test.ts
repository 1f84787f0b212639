import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { startMosquitto } from '../fixtures/mosquitto.js';
import { notifySocket } from '../fixtures/notify.js';
import { tmpDir } from '../fixtures/ports.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

t.test('under a notify socket: READY=1 after start, WATCHDOG=1 while the loop lives, none while it hangs', async (t) => {
  const notify = await notifySocket(t);
  const broker = await startMosquitto(t);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [1] } } } });
  // A build whose event loop hangs for 3 s, 2.5 s after start (a stuck driver, an endless loop).
  const hang = join(await tmpDir(t), 'hang.mjs');
  writeFileSync(hang, 'setTimeout(() => { const until = Date.now() + 3000; while (Date.now() < until); }, 2500);\n');
  const gw = await startGateway(t, {
    version: 1, gateway: { id: 'gw-wd' }, upstream: { mqtt: { url: broker.url } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port, devices: [
      { name: 'd', unitId: 1, pollIntervalMs: 100, points: [{ name: 'v', table: 'holding', address: 0, type: 'uint16' }] },
    ] }],
  }, { nodeArgs: ['--import', hang], env: { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '400000' } });

  const ready = await notify.waitFor((m) => m.fields['READY'] === '1');
  t.equal(ready.fields['MAINPID'], String(gw.child.pid), 'MAINPID is the daemon');
  const running = gw.lines.find((l) => l['msg'] === 'guardian running');
  t.ok(running !== undefined, 'READY=1 comes after the daemon is running');
  // Pings every 200 ms; then the 3 s hang; then pings again.
  await notify.waitFor((m) => m.fields['WATCHDOG'] === '1' && m.at > ready.at + 4500, 15000);
  const pings = notify.messages.filter((m) => m.fields['WATCHDOG'] === '1').map((m) => m.at);
  const gaps = pings.slice(1).map((at, i) => at - pings[i]!);
  const longest = Math.max(...gaps);
  t.ok(longest >= 2500, `while the loop hung no ping came for ${Math.round(longest)} ms (systemd would restart at WatchdogSec)`);
  t.ok(gaps.filter((g) => g < 1000).length >= 5, 'regular pings before and after the hang');
  gw.child.kill('SIGTERM');
  t.equal(await gw.exited, 0);
  await notify.waitFor((m) => m.fields['STOPPING'] === '1');
});
