// Commands end to end: a real `guardian run`, Mosquitto, a pymodbus device. Commands on
// guardian/<gw>/<device>/command/<name> are answered on …/reply/<name> with
// {status, data | error, transaction}; writes the manifest allows reach the device,
// everything else is answered with its reason and never reaches the device.
import t from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { connectClient, startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

interface Reply { status: number; data?: Record<string, unknown>; error?: { code: string; message: string }; transaction: string | null }
const body = (m: Message): Reply => JSON.parse(m.payload.toString()) as Reply;

void t.test('command topics → write policy → device → reply', async (t) => {
  const broker = await startMosquitto(t);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: [0, 0, 0], 10: [5] } } } });
  const base = 'guardian/gw-cmd/boiler';
  const replies = await subscribe(t, broker.url, `${base}/reply/+`);
  const telemetry = await subscribe(t, broker.url, `${base}/telemetry`);
  const gw = await startGateway(t, {
    version: 1,
    gateway: { id: 'gw-cmd', shutdownTimeoutMs: 2000 },
    upstream: { mqtt: { url: broker.url, reconnect: { initialMs: 100, maxMs: 500 } } },
    buses: [{
      name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port,
      devices: [{
        name: 'boiler', unitId: 1, pollIntervalMs: 600_000, timeoutMs: 500,
        points: [{ name: 'setpoint', table: 'holding', address: 0, type: 'uint32' }, { name: 'mode', table: 'holding', address: 10, type: 'uint16' }],
      }],
    }],
  }, { writePolicy: { boiler: { Allow: [{ Table: 'holding', Addresses: [0, 1], Min: 0, Max: 100000 }], MaxWritesPerMinute: 3 } } });
  await gw.waitForLog((l) => l.msg === 'receiving commands');
  const client = await connectClient(t, broker.url);
  const ask = async (name: string, payload: string, opts: { retain?: boolean } = {}): Promise<Reply> => {
    const seen = replies.messages.length;
    await client.publishAsync(`${base}/command/${name}`, payload, { qos: 1, retain: opts.retain ?? false });
    const m = await replies.waitFor((x) => replies.messages.indexOf(x) >= seen && x.topic === `${base}/reply/${name}`);
    return body(m);
  };
  t.same(await ask('read', '{"point":"mode","transaction":"r1"}'), { status: 200, data: { point: 'mode', value: 5 }, transaction: 'r1' });

  // the first poll comes up to 1 s after start; count device requests only after it
  await telemetry.waitFor(() => true);
  const before = await modbus.requests();
  t.same(await ask('write', '{"point":"setpoint","value":70000,"transaction":"w1","requester":"alice"}'), {
    status: 200, data: { table: 'holding', address: 0, values: [1, 4464], verified: true, point: 'setpoint', value: 70000 }, transaction: 'w1',
  });
  t.same(await modbus.get(1, 'holding', 0, 2), [1, 4464], 'the 32-bit setpoint is on the device');
  const decision = await gw.waitForLog((l) => l['decision'] === 'allowed');
  t.match(decision, { requester: `mqtt:${base}/command/write (says: alice)`, device: 'boiler', table: 'holding', address: 0, count: 2, point: 'setpoint', values: [70000] });

  t.same(await ask('write', '{"point":"setpoint","value":70000,"transaction":"w1"}'), {
    status: 200, data: { table: 'holding', address: 0, values: [1, 4464], verified: true, point: 'setpoint', value: 70000 }, transaction: 'w1',
  }, 'the same transaction again (a QoS 1 redelivery) gets the same answer…');
  t.equal(await modbus.requests() - before, 2, '…and is not written again: one FC16 and one read-back in all');

  const refused: [string, string, Partial<Reply>][] = [
    ['write', '{"point":"setpoint","value":100001,"transaction":"w2"}', { status: 403, error: { code: 'GUARDIAN_E_WRITE_DENIED', message: "device 'boiler': value 100001 is above the maximum 100000" }, transaction: 'w2' }],
    ['write', '{"point":"mode","value":1,"transaction":"w3"}', { status: 403, error: { code: 'GUARDIAN_E_WRITE_DENIED', message: "device 'boiler': holding 10 is outside the allowed 0-1" }, transaction: 'w3' }],
    ['write', '{"point":"setpoint","value":1', { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: "the payload is not JSON: Expected ',' or '}' after property value in JSON at position 29" }, transaction: null }],
    ['write', '[1,2]', { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: 'the payload must be a JSON object' }, transaction: null }],
    ['write', '{"point":"setpoint","value":1,"transaction":7}', { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: 'transaction must be a string of 1-128 characters' }, transaction: null }],
    ['write', JSON.stringify({ point: 'setpoint', value: 1, pad: 'x'.repeat(17000) }), { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: 'the payload has 17039 bytes; at most 16384' }, transaction: null }],
    ['reset', '{"transaction":"w4"}', { status: 404, error: { code: 'GUARDIAN_E_COMMAND_UNKNOWN', message: "device boiler has no command 'reset' (commands: write, read)" }, transaction: 'w4' }],
  ];
  for (const [name, payload, expected] of refused) t.same(await ask(name, payload), expected, `${name} ${payload.slice(0, 60)}`);

  const retained = await ask('write', '{"point":"setpoint","value":5,"transaction":"w5"}', { retain: true });
  t.same(retained, { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: 'a retained command is not executed: it would run again on every reconnect; publish commands with retain false' }, transaction: 'w5' });
  await client.publishAsync(`${base}/command/write`, '', { qos: 1, retain: true }); // clear it from the broker

  t.equal((await ask('write', '{"point":"setpoint","value":2,"transaction":"w6"}')).status, 200);
  t.equal((await ask('write', '{"point":"setpoint","value":3,"transaction":"w7"}')).status, 200);
  t.same(await ask('write', '{"point":"setpoint","value":4,"transaction":"w8"}'), { status: 429, error: { code: 'GUARDIAN_E_WRITE_DENIED', message: "device 'boiler': more than 3 writes a minute" }, transaction: 'w8' });
  t.same(await modbus.get(1, 'holding', 0, 3), [0, 3, 0], 'the last allowed write is what the device holds; nothing refused reached it');
  t.same(await modbus.get(1, 'holding', 10, 1), [5]);

  // a device this gateway does not have: a 404 on that device's reply topic
  const seen = replies.messages.length;
  const other = await subscribe(t, broker.url, 'guardian/gw-cmd/nobody/reply/+');
  await client.publishAsync('guardian/gw-cmd/nobody/command/write', '{"point":"x","value":1,"transaction":"n1"}', { qos: 1 });
  t.same(body(await other.waitFor(() => true)), { status: 404, error: { code: 'GUARDIAN_E_COMMAND_UNKNOWN', message: "this gateway has no device 'nobody'" }, transaction: 'n1' });
  t.equal(replies.messages.length, seen, 'no reply on the boiler topics for it');
  const warned = gw.lines.filter((l) => l.msg?.startsWith('command ') === true);
  t.ok(warned.length >= refused.length + 3, 'every refused command is logged');
});
