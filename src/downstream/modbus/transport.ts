import modbusSerial from 'modbus-serial';
import type { ModbusRTU as ModbusRTUType } from 'modbus-serial/ModbusRTU.js';
import type { BusConfig } from '../../core/config.js';
import { GuardianError } from '../../core/errors.js';

export type ModbusClient = ModbusRTUType;
/** modbus-serial is CommonJS whose `module.exports` is the class; its typings call it the default export. */
export const ModbusRTU = modbusSerial as unknown as typeof ModbusRTUType;

const OPEN_TIMEOUT_MS = 5000;

/** Close a client; resolves with the close error (a port that is already gone), for the caller to log. */
export function closeClient(client: ModbusClient): Promise<Error | undefined> {
  return new Promise((resolve) => {
    client.close((err?: Error | null) => resolve(err ?? undefined));
  });
}

/**
 * Open one single-use modbus-serial client for a bus: RTU on a serial port,
 * Modbus TCP, or RTU framing over TCP. After any transport failure the caller
 * discards it and opens a new one.
 */
export async function openClient(bus: BusConfig): Promise<ModbusClient> {
  const client = new ModbusRTU();
  const where = bus.type === 'rtu' ? bus.port : `${bus.host}:${bus.port}`;
  let timer: NodeJS.Timeout | undefined;
  const opening = bus.type === 'rtu'
    ? client.connectRTUBuffered(bus.port, { baudRate: bus.baudRate, parity: bus.parity, dataBits: bus.dataBits, stopBits: bus.stopBits })
    : bus.type === 'tcp'
      ? client.connectTCP(bus.host, { port: bus.port })
      : client.connectTelnet(bus.host, { port: bus.port }); // raw RTU frames over TCP (serial-to-Ethernet converters)
  try {
    await Promise.race([
      opening,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`open timed out after ${OPEN_TIMEOUT_MS} ms`)), OPEN_TIMEOUT_MS); }),
    ]);
  } catch (cause) {
    void closeClient(client); // the open failed; the error that matters is the one thrown below
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new GuardianError('GUARDIAN_E_MODBUS_CONNECT', `cannot open ${bus.type} bus ${bus.name} (${where}): ${detail}`, { bus: bus.name, where }, { cause });
  } finally {
    clearTimeout(timer);
  }
  return client;
}
