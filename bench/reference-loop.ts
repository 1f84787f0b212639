// The reference loop for bench/throughput.ts: Modbus TCP poll -> MQTT QoS 1 with
// modbus-serial + mqtt.js and nothing else. Same message as Guardian's telemetry
// ({"seq","ts","points","quality"}, ts = epoch ms when the poll completed), same
// topic (<prefix>/<gatewayId>/<device>/telemetry), one TCP connection per device.
//   node reference-loop.js --mqtt mqtt://127.0.0.1:1883 --id ref \
//     --device dev01@127.0.0.1:5020/1 [--device …] [--registers 100] [--interval 10]
// --interval 0 polls back to back (as fast as possible). SIGTERM/SIGINT end it.
import { parseArgs } from 'node:util';
import modbusSerial from 'modbus-serial';
import type { ModbusRTU as ModbusRTUType } from 'modbus-serial/ModbusRTU.js';
import mqtt from 'mqtt';

// CommonJS: module.exports is the class (as src/downstream/modbus/transport.ts does)
const ModbusRTU = modbusSerial as unknown as typeof ModbusRTUType;

const { values: opt } = parseArgs({
  options: {
    mqtt: { type: 'string' }, id: { type: 'string', default: 'ref' }, prefix: { type: 'string', default: 'guardian' },
    device: { type: 'string', multiple: true, default: [] }, registers: { type: 'string', default: '100' },
    interval: { type: 'string', default: '10' },
  },
});
if (opt.mqtt === undefined || opt.device.length === 0) throw new Error('usage: --mqtt URL --device NAME@HOST:PORT/UNIT … [--interval MS]');
const count = Number(opt.registers);
const interval = Number(opt.interval);
const names = Array.from({ length: count }, (_, i) => `r${i}`);

const client = await mqtt.connectAsync(opt.mqtt, { protocolVersion: 5, clientId: `ref-${opt.id}`, clean: true, reconnectPeriod: 1000 });
let running = true;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function pollDevice(spec: string): Promise<void> {
  const m = /^([^@]+)@(.+):(\d+)\/(\d+)$/.exec(spec);
  if (m === null) throw new Error(`bad --device ${spec}`);
  const [, name = '', host = '', port = '', unit = ''] = m;
  const topic = `${opt.prefix}/${opt.id}/${name}/telemetry`;
  const modbus = new ModbusRTU();
  await modbus.connectTCP(host, { port: Number(port) });
  modbus.setID(Number(unit));
  modbus.setTimeout(1000);
  let seq = 0;
  let nextDue = Date.now();
  while (running) {
    const { data } = await modbus.readHoldingRegisters(0, count);
    const ts = Date.now();
    const points: Record<string, number> = {};
    const quality: Record<string, string> = {};
    for (let i = 0; i < count; i++) { points[names[i] as string] = data[i] as number; quality[names[i] as string] = 'good'; }
    seq += 1;
    client.publish(topic, JSON.stringify({ seq, ts, points, quality }), { qos: 1 }, (err) => { if (err) process.stderr.write(`publish: ${err.message}\n`); });
    if (interval > 0) {
      nextDue += interval;
      const now = Date.now();
      if (nextDue < now) nextDue = now; // overran: no catch-up burst (Guardian does the same)
      await sleep(nextDue - now);
    }
  }
  modbus.close(() => undefined);
}

const stop = (): void => { running = false; void client.endAsync().finally(() => process.exit(0)); };
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
await Promise.all(opt.device.map(pollDevice));
