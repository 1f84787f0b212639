import modbusSerial from 'modbus-serial';
import type { ModbusRTU as ModbusRTUType } from 'modbus-serial/ModbusRTU.js';
import type { BusConfig } from '../../core/config.js';
import { GuardianError } from '../../core/errors.js';

export type ModbusClient = ModbusRTUType;
/** modbus-serial is CommonJS whose `module.exports` is the class; its typings call it the default export. */
export const ModbusRTU = modbusSerial as unknown as typeof ModbusRTUType;

const OPEN_TIMEOUT_MS = 5000;
const CLOSE_TIMEOUT_MS = 1000;

/**
 * Close a client; resolves with the close error (a port that is already gone), for the caller to log.
 * A client that is no longer open has nothing left to release. modbus-serial's TCP ports call
 * back from close() only on the socket's 'close' event while the port is open, so closing one
 * the peer already closed would never complete; nor does closing an open one whose peer never
 * answers: after CLOSE_TIMEOUT_MS this resolves with an error instead of hanging its caller.
 * (`destroy()` is no way out: modbus-serial's destroy cancels the timeouts of pending
 * requests without rejecting them, so they would never settle.)
 */
export function closeClient(client: ModbusClient): Promise<Error | undefined> {
  return new Promise((resolve) => {
    if (!client.isOpen) {
      resolve(undefined);
      return;
    }
    const timer = setTimeout(() => resolve(new Error(`close did not complete within ${CLOSE_TIMEOUT_MS} ms`)), CLOSE_TIMEOUT_MS);
    client.close((err?: Error | null) => {
      clearTimeout(timer);
      resolve(err ?? undefined);
    });
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
