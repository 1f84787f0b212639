import modbusSerial from 'modbus-serial';
import type { ModbusRTU as ModbusRTUType } from 'modbus-serial/ModbusRTU.js';
import type { BusConfig, Table } from '../../config/types.js';
import { GuardianError } from '../../core/errors.js';
import { characterMs, interFrameSilenceMs, LineSilence, type LineEvents } from './line-silence.js';

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
 * discards it and opens a new one. On a serial line every frame waits for the
 * line's inter-frame silence (t3.5, line-silence.ts); `line` hears what that gate reports.
 */
export async function openClient(bus: BusConfig, line?: LineEvents): Promise<ModbusClient> {
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
      const port = rtuPort(client);
      const silence = bus.type === 'rtu' && line !== undefined
        ? new LineSilence(interFrameSilenceMs(bus), characterMs(bus), port, line)
        : undefined;
      discardStaleInput(port, client, silence);
    } catch (err) {
      void closeClient(client); // unusable; the error below says why
      throw err;
    }
  }
  return client;
}

/** The line under modbus-serial's RTU port: a SerialPort (serial) or a net.Socket (RTU over TCP). */
interface LineInternals {
  prependListener(event: 'data', listener: (data: Buffer) => void): unknown;
  drain?: (callback: (err?: Error | null) => void) => void;
}

interface RtuPortInternals {
  _buffer: Buffer;
  _client: LineInternals;
  readonly isOpen: boolean;
  write(data: Buffer): void;
}

function isRtuPort(port: unknown): port is RtuPortInternals {
  if (typeof port !== 'object' || port === null) return false;
  const rec = port as Record<string, unknown>;
  const line = rec['_client'];
  return Buffer.isBuffer(rec['_buffer']) && typeof rec['write'] === 'function'
    && typeof line === 'object' && line !== null && typeof (line as Record<string, unknown>)['prependListener'] === 'function';
}

/** modbus-serial's RTU port of a client (a private field of modbus-serial 8, checked). */
function rtuPort(client: ModbusClient): RtuPortInternals {
  const port = (client as unknown as { _port?: unknown })._port;
  if (!isRtuPort(port)) {
    throw new GuardianError('GUARDIAN_E_INTERNAL', 'modbus-serial RTU port has no receive buffer or line to watch (modbus-serial internals changed)');
  }
  return port;
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
 *
 * With a `silence` gate (serial lines), the frame is sent only once the line has
 * been quiet for t3.5; the buffer is cleared when it really goes out, so nothing
 * that arrived while it waited can pass for its answer. The gate hears every
 * received byte first (prependListener), and the port's drain for our own frames.
 */
function discardStaleInput(port: RtuPortInternals, client: ModbusClient, silence: LineSilence | undefined): void {
  const write = port.write.bind(port);
  const send = (data: Buffer): void => {
    port._buffer = Buffer.alloc(0);
    write(data);
  };
  if (silence === undefined) {
    port.write = send;
    return;
  }
  const line = port._client;
  line.prependListener('data', () => silence.received());
  port.write = (data: Buffer): void => {
    const timeout: unknown = client.getTimeout(); // null until a caller set one
    silence.send(data.length, typeof timeout === 'number' && timeout > 0 ? timeout : Number.POSITIVE_INFINITY, () => {
      send(data);
      // a failed drain leaves the estimated end of the frame in place; the port reports its own error
      line.drain?.((err) => { if (err === undefined || err === null) silence.drained(); });
    });
  };
}
