import modbusSerial from 'modbus-serial';
import type { ModbusRTU as ModbusRTUType } from 'modbus-serial/ModbusRTU.js';
import type { BusConfig, Table } from '../../core/config.js';
import { GuardianError } from '../../core/errors.js';

export type ModbusClient = ModbusRTUType;
/** modbus-serial is CommonJS whose `module.exports` is the class; its typings call it the default export. */
export const ModbusRTU = modbusSerial as unknown as typeof ModbusRTUType;

/** One read of `count` bits (coil, discrete) or registers (input, holding) from `address`. */
export async function readTable(client: ModbusClient, table: Table, address: number, count: number): Promise<number[] | boolean[]> {
  switch (table) {
    case 'coil': return (await client.readCoils(address, count)).data;
    case 'discrete': return (await client.readDiscreteInputs(address, count)).data;
    case 'input': return (await client.readInputRegisters(address, count)).data;
    case 'holding': return (await client.readHoldingRegisters(address, count)).data;
  }
}

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
  if (bus.type !== 'tcp') {
    try {
      discardStaleInput(client);
    } catch (err) {
      void closeClient(client); // unusable; the error below says why
      throw err;
    }
  }
  return client;
}

interface RtuPortInternals {
  _buffer: Buffer;
  write(data: Buffer): void;
}

function isRtuPort(port: unknown): port is RtuPortInternals {
  return typeof port === 'object' && port !== null
    && Buffer.isBuffer((port as Record<string, unknown>)['_buffer']) && typeof (port as Record<string, unknown>)['write'] === 'function';
}

/**
 * RTU framing has no transaction ids: an answer is matched to a request only by
 * arriving while it is pending. modbus-serial's RTU ports (serial: RTUBufferedPort,
 * RTU over TCP: TelnetPort) collect received bytes in one buffer that is trimmed
 * only when a frame for the pending request is found in it, and is never cleared
 * between requests. Whatever a failed request left there (a frame with another
 * unit id, the head of a truncated frame, noise, a late answer) is scanned again
 * with the next request's bytes: a frame left over from one request could be
 * taken as the answer to the next (another unit's frame with this unit's id, or a
 * late answer to an earlier read of the same length), or be glued to the head
 * of the real answer and fail its CRC. So every request starts from an empty
 * buffer: nothing received before a request was sent can be its answer.
 * (A private field of modbus-serial 8: checked here, so that a change to it fails
 * the open loudly instead of silently bringing the bug back.)
 */
function discardStaleInput(client: ModbusClient): void {
  const port = (client as unknown as { _port?: unknown })._port;
  if (!isRtuPort(port)) {
    throw new GuardianError('GUARDIAN_E_INTERNAL', 'modbus-serial RTU port has no receive buffer to clear (modbus-serial internals changed)');
  }
  const write = port.write.bind(port);
  port.write = (data: Buffer): void => {
    port._buffer = Buffer.alloc(0);
    write(data);
  };
}
