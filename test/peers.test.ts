// Smoke tests: every fixture against a real client.
import t from 'tap';
import type { Test } from 'tap';
import ModbusSerial from 'modbus-serial';
import { makePki } from './fixtures/pki.js';
import { connectClient, startMosquitto, subscribe, tryConnect } from './fixtures/mosquitto.js';
import { freePort, sleep, tmpDir, waitForPort } from './fixtures/ports.js';
import { startModbusServer } from './fixtures/pymodbus.js';
import type { UnitMap } from './fixtures/pymodbus.js';
import { ptyPair } from './fixtures/socat.js';

// Under NodeNext, TS types the default import of this CJS package as the whole
// module; at runtime module.exports is the class and .default points back to it.
const ModbusRTU = ModbusSerial.default;
type ModbusClient = InstanceType<typeof ModbusRTU>;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

function describe(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const e = err as Record<string, unknown>;
  return JSON.stringify({
    instanceofError: err instanceof Error, name: e['name'], message: e['message'],
    errno: e['errno'], modbusCode: e['modbusCode'], hasStack: typeof e['stack'] === 'string',
  });
}

function modbusClient(t: Test): ModbusClient {
  const client = new ModbusRTU();
  t.teardown(() => new Promise<void>((resolve) => {
    if (!client.isOpen) { resolve(); return; }
    client.close(() => resolve());
  }));
  return client;
}

const UNITS: UnitMap = {
  1: {
    holding: { 0: [10, 11, 12], 100: [65535] },
    input: { 5: [500, 501] },
    coils: { 0: [true, false, true] },
    discrete: { 8: [false, true] },
  },
  3: { holding: { 0: [3000] } },
};

/** the map reads back; undefined address -> exception 2; absent unit -> timeout */
async function checkDevice(t: Test, client: ModbusClient): Promise<void> {
  client.setTimeout(500);
  client.setID(1);
  t.same((await client.readHoldingRegisters(0, 3)).data, [10, 11, 12], 'holding 0..2');
  t.same((await client.readHoldingRegisters(100, 1)).data, [65535], 'holding 100');
  t.same((await client.readInputRegisters(5, 2)).data, [500, 501], 'input 5..6');
  t.same((await client.readCoils(0, 3)).data.slice(0, 3), [true, false, true], 'coils 0..2');
  t.same((await client.readDiscreteInputs(8, 2)).data.slice(0, 2), [false, true], 'discrete 8..9');

  const exc = await rejection(client.readHoldingRegisters(3, 1));
  t.comment(`exception error: ${describe(exc)}`);
  t.ok(exc instanceof Error, 'exception is an Error');
  t.match(exc, { modbusCode: 2, message: /^Modbus exception 2: Illegal data address/ }, 'undefined address -> exception 2');
  t.match(await rejection(client.readHoldingRegisters(1, 3)), { modbusCode: 2 }, 'partly defined range -> exception 2');
  t.match(await rejection(client.readInputRegisters(0, 1)), { modbusCode: 2 }, 'undefined input -> exception 2');

  client.setID(2);
  const started = Date.now();
  const timeout = await rejection(client.readHoldingRegisters(0, 1));
  t.comment(`absent unit error after ${Date.now() - started} ms: ${describe(timeout)}`);
  t.match(timeout, { name: 'TransactionTimedOutError', message: 'Timed out', errno: 'ETIMEDOUT' }, 'absent unit -> timeout');
  t.notOk(timeout instanceof Error, 'modbus-serial timeout is not an Error instance');

  client.setID(3);
  t.same((await client.readHoldingRegisters(0, 1)).data, [3000], 'another live unit answers after the timeout');
}

void t.test('mosquitto plain: publish/subscribe round trip', async (t) => {
  const broker = await startMosquitto(t);
  t.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);
  const sub = await subscribe(t, broker.url, 'guardian/test/#');
  const pub = await connectClient(t, broker.url);
  await pub.publishAsync('guardian/test/a', 'hello', { qos: 1, retain: true });
  const m = await sub.waitFor((x) => x.topic === 'guardian/test/a');
  t.equal(m.payload.toString(), 'hello');
  t.equal(m.retain, false, 'live delivery is not flagged retained');
  const late = await subscribe(t, broker.url, 'guardian/test/a', { protocolVersion: 5 });
  t.equal((await late.waitFor(() => true)).retain, true, 'retained message for a late subscriber');
  const err = await rejection(sub.waitFor((x) => x.topic === 'nope', 200));
  t.match(err, { message: /guardian\/test\/a/ }, 'timeout error lists topics seen');
});

void t.test('mosquitto TLS with client certificates', async (t) => {
  const pki = await makePki(await tmpDir(t, 'guardian-pki-'));
  const broker = await startMosquitto(t, {
    tls: { caFile: pki.caCert, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true },
  });
  t.equal(broker.url, `mqtts://localhost:${broker.port}`);
  const good = { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey };
  const sub = await subscribe(t, broker.url, 'tls/#', good);
  const pub = await connectClient(t, broker.url, good);
  await pub.publishAsync('tls/x', 'secure', { qos: 1 });
  t.equal((await sub.waitFor((m) => m.topic === 'tls/x')).payload.toString(), 'secure');

  const noCert = await tryConnect(broker.url, { ca: pki.caCert });
  t.equal(noCert.connected, false, `no client cert refused (${noCert.error?.message ?? ''})`);
  const rogue = await tryConnect(broker.url, { ca: pki.caCert, cert: pki.rogueClientCert, key: pki.rogueClientKey });
  t.equal(rogue.connected, false, `rogue client cert refused (${rogue.error?.message ?? ''})`);
  t.match(broker.output(), /guardian-test-gw/, 'broker saw the client identity');

  const rogueBroker = await startMosquitto(t, {
    tls: { caFile: pki.caCert, certFile: pki.rogueServerCert, keyFile: pki.rogueServerKey, requireCertificate: false },
  });
  const wrongServer = await tryConnect(rogueBroker.url, good);
  t.equal(wrongServer.connected, false, `rogue server cert rejected by client (${wrongServer.error?.message ?? ''})`);
});

void t.test('mosquitto kill() then start() on the same port', async (t) => {
  const port = await freePort();
  const broker = await startMosquitto(t, { port });
  t.equal(broker.port, port);
  t.equal((await tryConnect(broker.url)).connected, true);
  await broker.kill();
  t.equal(broker.running(), false);
  t.equal((await tryConnect(broker.url, {}, 1000)).connected, false, 'refused while down');
  await broker.start();
  t.equal(broker.port, port);
  t.equal((await tryConnect(broker.url)).connected, true, 'connects again after restart');
  await broker.stop();
  t.equal(broker.running(), false, 'stop() ends it');
});

void t.test('pymodbus TCP', async (t) => {
  const server = await startModbusServer(t, { mode: 'tcp', units: UNITS });
  await waitForPort(server.port);
  const client = modbusClient(t);
  await client.connectTCP('127.0.0.1', { port: server.port });
  await checkDevice(t, client);

  client.setID(1);
  await server.set(1, 'holding', 1, [4242]);
  t.same((await client.readHoldingRegisters(0, 3)).data, [10, 4242, 12], 'set() is visible to the client');
  await server.set(1, 'coils', 1, [true]);
  t.same((await client.readCoils(0, 3)).data.slice(0, 3), [true, true, true]);
  await client.writeRegister(2, 7);
  t.same(await server.get(1, 'holding', 0, 3), [10, 4242, 7], 'get() sees client writes');
  t.same(await server.get(1, 'coils', 0, 2), [true, true]);
  await server.set(1, 'holding', 50, [1, 2]);
  t.same((await client.readHoldingRegisters(50, 2)).data, [1, 2], 'set() can define new addresses');
  t.match(await rejection(server.get(1, 'holding', 3, 1)), { message: /not defined/ });
  t.match(await rejection(server.set(1, 'holding', 0, [70000])), { message: /out of range/ });
  t.ok((await server.requests()) >= 10, 'requests() counts responses');

  await server.removeUnit(3);
  client.setID(3);
  t.match(await rejection(client.readHoldingRegisters(0, 1)), { errno: 'ETIMEDOUT' }, 'removed unit goes silent');
  await server.addUnit(4, { input: { 0: [44] } });
  client.setID(4);
  t.same((await client.readInputRegisters(0, 1)).data, [44], 'added unit answers');
});

void t.test('pymodbus counter and restart', async (t) => {
  const server = await startModbusServer(t, {
    mode: 'tcp', units: { 1: { input: { 0: [65534] } } },
    counter: { unit: 1, table: 'input', address: 0, periodMs: 20 },
  });
  const client = modbusClient(t);
  await client.connectTCP('127.0.0.1', { port: server.port });
  client.setID(1);
  client.setTimeout(500);
  const seen = new Set<number>();
  for (let i = 0; i < 20 && seen.size < 4; i++) {
    const v = (await client.readInputRegisters(0, 1)).data[0];
    if (v !== undefined) seen.add(v);
    await sleep(25);
  }
  t.ok(seen.has(65535) || seen.has(0), `counter wraps: ${[...seen].join(',')}`);
  t.ok([...seen].some((v) => v < 100), 'counter wrapped past 65535');

  const port = server.port;
  await server.kill();
  await server.start();
  t.equal(server.port, port, 'restarted on the same port');
  const again = modbusClient(t);
  await again.connectTCP('127.0.0.1', { port });
  again.setID(1);
  t.ok((await again.readInputRegisters(0, 1)).data.length === 1, 'answers after restart');
});

void t.test('pymodbus RTU on a socat pty pair', async (t) => {
  const pair = await ptyPair(t);
  const server = await startModbusServer(t, { mode: 'rtu', serialPath: pair.b, units: UNITS });
  const client = modbusClient(t);
  await client.connectRTUBuffered(pair.a, { baudRate: 9600 });
  await checkDevice(t, client);
  client.setID(1);
  await server.set(1, 'input', 5, [7]);
  t.same((await client.readInputRegisters(5, 2)).data, [7, 501]);
});

void t.test('socat pair kill() and start(): the device is unplugged and comes back', async (t) => {
  const pair = await ptyPair(t);
  const server = await startModbusServer(t, { mode: 'rtu', serialPath: pair.b, units: UNITS });
  const read = async (): Promise<number[]> => {
    const client = modbusClient(t);
    await client.connectRTUBuffered(pair.a, { baudRate: 9600 });
    client.setID(3);
    client.setTimeout(1000);
    try {
      return (await client.readHoldingRegisters(0, 1)).data;
    } finally {
      await new Promise<void>((resolve) => client.close(() => resolve()));
    }
  };
  t.same(await read(), [3000]);
  const first = pair.pid();
  await pair.kill();
  t.equal(pair.running(), false);
  await t.rejects(modbusClient(t).connectRTUBuffered(pair.a, { baudRate: 9600 }), 'ends are gone');
  await pair.start();
  t.not(pair.pid(), first, 'a new socat');
  await server.waitSerialOpen();
  t.same(await read(), [3000], 'the server reopened the re-created pty');
  t.ok(server.running());
});

// modbus-serial's connectTcpRTUBuffered is NOT RTU framing on the wire: it
// strips the CRC and sends an MBAP header (Modbus TCP). Raw RTU frames over TCP
// (serial-to-Ethernet converters) are modbus-serial's connectTelnet.
void t.test('pymodbus RTU over TCP (raw RTU frames on TCP)', async (t) => {
  const server = await startModbusServer(t, { mode: 'rtu-over-tcp', units: UNITS });
  const client = modbusClient(t);
  await client.connectTelnet('127.0.0.1', { port: server.port });
  await checkDevice(t, client);

  const buffered = modbusClient(t);
  await buffered.connectTcpRTUBuffered('127.0.0.1', { port: server.port });
  buffered.setID(1);
  buffered.setTimeout(300);
  t.match(await rejection(buffered.readHoldingRegisters(0, 1)), { errno: 'ETIMEDOUT' },
    'connectTcpRTUBuffered gets no answer from an RTU-framed server');
});

void t.test('modbus-serial connectTcpRTUBuffered speaks MBAP: works against tcp mode', async (t) => {
  const server = await startModbusServer(t, { mode: 'tcp', units: UNITS });
  const client = modbusClient(t);
  await client.connectTcpRTUBuffered('127.0.0.1', { port: server.port });
  await checkDevice(t, client);
});
