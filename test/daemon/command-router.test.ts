// Commands end to end: a real `guardian run`, Mosquitto, a pymodbus device. Commands on
// guardian/<gw>/<device>/command/<name> are answered on …/reply/<name> with
// {status, data | error, transaction}; writes the manifest allows reach the device,
// everything else is answered with its reason and never reaches the device.
import t, { type Test } from 'tap';
import { startGateway } from '../fixtures/gateway.js';
import { connectClient, startMosquitto, subscribe, type Message } from '../fixtures/mosquitto.js';
import { startModbusServer } from '../fixtures/pymodbus.js';

interface Reply { status: number; data?: Record<string, unknown>; error?: { code: string; message: string }; transaction: string | null }
const body = (m: Message): Reply => JSON.parse(m.payload.toString()) as Reply;
/** A command payload sent now: `ts` is the epoch milliseconds when it was sent. */
const sent = (o: Record<string, unknown>, ts = Date.now()): string => JSON.stringify({ ...o, ts });

/** Mosquitto, a pymodbus boiler (setpoint uint32 at 0, mode 5 at 10) and a `guardian run` with this commands config and write policy. */
async function commandRig(t: Test, id: string, holding: number[], commands: Record<string, unknown>, policy: Record<string, unknown>) {
  const broker = await startMosquitto(t);
  const modbus = await startModbusServer(t, { mode: 'tcp', units: { 1: { holding: { 0: holding, 10: [5] } } } });
  const base = `guardian/${id}/boiler`;
  const replies = await subscribe(t, broker.url, `${base}/reply/+`);
  const telemetry = await subscribe(t, broker.url, `${base}/telemetry`);
  const gw = await startGateway(t, {
    version: 1,
    gateway: { id, shutdownTimeoutMs: 2000 },
    upstream: { mqtt: { url: broker.url, reconnect: { initialMs: 100, maxMs: 500 } } },
    commands,
    buses: [{
      name: 'plc', type: 'tcp', host: '127.0.0.1', port: modbus.port,
      devices: [{
        name: 'boiler', unitId: 1, pollIntervalMs: 600_000, timeoutMs: 500,
        points: [{ name: 'setpoint', table: 'holding', address: 0, type: 'uint32' }, { name: 'mode', table: 'holding', address: 10, type: 'uint16' }],
      }],
    }],
  }, { writePolicy: { boiler: policy } });
  await gw.waitForLog((l) => l.msg === 'receiving commands');
  const client = await connectClient(t, broker.url);
  const ask = async (name: string, payload: string, opts: { retain?: boolean } = {}): Promise<Reply> => {
    const seen = replies.messages.length;
    await client.publishAsync(`${base}/command/${name}`, payload, { qos: 1, retain: opts.retain ?? false });
    return body(await replies.waitFor((x) => replies.messages.indexOf(x) >= seen && x.topic === `${base}/reply/${name}`));
  };
  return { broker, modbus, gw, replies, telemetry, client, ask };
}

void t.test('command topics → write policy → device → reply', async (t) => {
  const { broker, modbus, gw, replies, telemetry, client, ask } = await commandRig(t, 'gw-cmd', [0, 0, 0], {}, { Allow: [{ Table: 'holding', Addresses: [0, 1], Min: 0, Max: 100000 }], MaxWritesPerMinute: 3 });
  const base = 'guardian/gw-cmd/boiler';
  t.same(await ask('read', sent({ point: 'mode', transaction: 'r1' })), { status: 200, data: { point: 'mode', value: 5 }, transaction: 'r1' });

  // the first poll comes up to 1 s after start; count device requests only after it
  await telemetry.waitFor(() => true);
  const before = await modbus.requests();
  const w1 = sent({ point: 'setpoint', value: 70000, transaction: 'w1', requester: 'alice' });
  t.same(await ask('write', w1), {
    status: 200, data: { table: 'holding', address: 0, values: [1, 4464], verified: true, point: 'setpoint', value: 70000 }, transaction: 'w1',
  });
  t.same(await modbus.get(1, 'holding', 0, 2), [1, 4464], 'the 32-bit setpoint is on the device');
  const decision = await gw.waitForLog((l) => l['decision'] === 'allowed');
  t.match(decision, { requester: `mqtt:${base}/command/write (says: alice)`, device: 'boiler', table: 'holding', address: 0, count: 2, point: 'setpoint', data: [1, 4464], written: [{ point: 'setpoint', value: 70000 }] });

  t.same(await ask('write', w1), {
    status: 200, data: { table: 'holding', address: 0, values: [1, 4464], verified: true, point: 'setpoint', value: 70000 }, transaction: 'w1',
  }, 'the same transaction again (a QoS 1 redelivery) gets the same answer…');
  t.equal(await modbus.requests() - before, 2, '…and is not written again: one FC16 and one read-back in all');

  const refused: [string, string, Partial<Reply>][] = [
    ['write', sent({ point: 'setpoint', value: 100001, transaction: 'w2' }), { status: 403, error: { code: 'GUARDIAN_E_WRITE_DENIED', message: "device 'boiler': value 100001 is above the maximum 100000" }, transaction: 'w2' }],
    ['write', sent({ point: 'mode', value: 1, transaction: 'w3' }), { status: 403, error: { code: 'GUARDIAN_E_WRITE_DENIED', message: "device 'boiler': holding 10 is outside the allowed 0-1 (holding 10 is in no rule)" }, transaction: 'w3' }],
    ['write', '{"point":"setpoint","value":1', { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: "the payload is not JSON: Expected ',' or '}' after property value in JSON at position 29" }, transaction: null }],
    ['write', '[1,2]', { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: 'the payload must be a JSON object' }, transaction: null }],
    ['write', '{"point":"setpoint","value":1,"transaction":7}', { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: 'transaction must be a string of 1-128 characters' }, transaction: null }],
    ['write', JSON.stringify({ point: 'setpoint', value: 1, pad: 'x'.repeat(17000) }), { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: 'the payload has 17039 bytes; at most 16384' }, transaction: null }],
    ['reset', sent({ transaction: 'w4' }), { status: 404, error: { code: 'GUARDIAN_E_COMMAND_UNKNOWN', message: "device boiler has no command 'reset' (commands: write, read)" }, transaction: 'w4' }],
  ];
  for (const [name, payload, expected] of refused) t.same(await ask(name, payload), expected, `${name} ${payload.slice(0, 60)}`);

  const retained = await ask('write', sent({ point: 'setpoint', value: 5, transaction: 'w5' }), { retain: true });
  t.same(retained, { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message: 'a retained command is not executed: it would run again on every reconnect; publish commands with retain false' }, transaction: 'w5' });
  await client.publishAsync(`${base}/command/write`, '', { qos: 1, retain: true }); // clear it from the broker

  t.equal((await ask('write', sent({ point: 'setpoint', value: 2, transaction: 'w6' }))).status, 200);
  t.equal((await ask('write', sent({ point: 'setpoint', value: 3, transaction: 'w7' }))).status, 200);
  t.same(await ask('write', sent({ point: 'setpoint', value: 4, transaction: 'w8' })), { status: 429, error: { code: 'GUARDIAN_E_WRITE_DENIED', message: "device 'boiler': more than 3 writes a minute" }, transaction: 'w8' });
  t.same(await modbus.get(1, 'holding', 0, 3), [0, 3, 0], 'the last allowed write is what the device holds; nothing refused reached it');
  t.same(await modbus.get(1, 'holding', 10, 1), [5]);

  // a device this gateway does not have: a 404 on that device's reply topic
  const seen = replies.messages.length;
  const other = await subscribe(t, broker.url, 'guardian/gw-cmd/nobody/reply/+');
  await client.publishAsync('guardian/gw-cmd/nobody/command/write', sent({ point: 'x', value: 1, transaction: 'n1' }), { qos: 1 });
  t.same(body(await other.waitFor(() => true)), { status: 404, error: { code: 'GUARDIAN_E_COMMAND_UNKNOWN', message: "this gateway has no device 'nobody'" }, transaction: 'n1' });
  t.equal(replies.messages.length, seen, 'no reply on the boiler topics for it');
  // the log reaches the test through the gateway's stdout, the reply through the broker: wait for the log
  const warned = (): number => gw.lines.filter((l) => l.msg?.startsWith('command ') === true).length;
  await gw.waitForLog(() => warned() >= refused.length + 3);
  t.ok(warned() >= refused.length + 3, 'every refused command is logged');
});

void t.test('expiry: old, future-dated and undated commands are refused and answered; reads are rate-limited per device', async (t) => {
  const { modbus, gw, telemetry, ask } = await commandRig(t, 'gw-exp', [0, 0], { maxAgeMs: 30_000, maxFutureMs: 5_000, maxReadsPerMinute: 3 }, { Allow: [{ Table: 'holding', Addresses: [0, 1] }] });
  await telemetry.waitFor(() => true);
  const before = await modbus.requests();
  const now = Date.now();
  const refused: [string, Partial<Reply>, RegExp][] = [
    [sent({ point: 'setpoint', value: 7, transaction: 'old' }, now - 3_600_000), { status: 408, transaction: 'old' }, /^the command was sent at .*, \d+ ms ago; commands older than 30000 ms are not run$/],
    [sent({ point: 'setpoint', value: 7, transaction: 'future' }, now + 3_600_000), { status: 408, transaction: 'future' }, /^the command is dated \d+ ms in the future .*at most 5000 ms of clock skew is allowed/],
    [sent({ point: 'setpoint', value: 7, transaction: 'short', maxAgeMs: 1000 }, now - 20_000), { status: 408, transaction: 'short' }, /commands older than 1000 ms are not run/],
  ];
  for (const [payload, expected, message] of refused) {
    const reply = await ask('write', payload);
    t.match(reply, { ...expected, error: { code: 'GUARDIAN_E_COMMAND_EXPIRED', message } }, `${payload.slice(0, 70)}`);
  }
  const invalid: [string, string][] = [
    [JSON.stringify({ point: 'setpoint', value: 7 }), 'ts is required: the epoch milliseconds when the command was sent (commands.requireTs)'],
    [JSON.stringify({ point: 'setpoint', value: 7, ts: '2024-01-01' }), 'ts must be the epoch milliseconds when the command was sent (a positive integer)'],
    [JSON.stringify({ point: 'setpoint', value: 7, ts: Date.now(), maxAgeMs: -1 }), 'maxAgeMs must be a positive integer (milliseconds)'],
  ];
  for (const [payload, message] of invalid) t.same(await ask('write', payload), { status: 400, error: { code: 'GUARDIAN_E_COMMAND_INVALID', message }, transaction: null }, payload);
  t.equal(await modbus.requests(), before, 'none of them reached the device');
  t.same(await modbus.get(1, 'holding', 0, 2), [0, 0]);
  const logged = gw.lines.filter((l) => (l['err'] as { code?: string } | undefined)?.code === 'GUARDIAN_E_COMMAND_EXPIRED');
  t.equal(logged.length, refused.length, 'every expired command is logged with its code');

  t.match(await ask('write', sent({ point: 'setpoint', value: 7, transaction: 'old' })), { status: 200, data: { value: 7 }, transaction: 'old' },
    'an expired command is not remembered: sent again with a fresh ts, the same transaction runs');
  t.same(await modbus.get(1, 'holding', 0, 2), [0, 7]);

  const reads = [];
  for (let i = 0; i < 4; i++) reads.push(await ask('read', sent({ point: 'mode', transaction: `r${i}` })));
  t.same(reads.slice(0, 3).map((r) => r.status), [200, 200, 200]);
  t.same(reads[3], { status: 429, error: { code: 'GUARDIAN_E_COMMAND_RATE', message: "device 'boiler': more than 3 reads a minute (commands.maxReadsPerMinute)" }, transaction: 'r3' }, 'the fourth read in a minute is refused');
  t.equal((await ask('write', sent({ point: 'setpoint', value: 8, transaction: 'w-after' }))).status, 200, 'writes have their own limit (the manifest\'s)');
});
