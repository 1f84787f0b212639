import modbusSerial from 'modbus-serial';
import type { ServerTCP as ServerTCPType } from 'modbus-serial/ServerTCP.js';

/** modbus-serial is CommonJS; its ServerTCP class is a property of `module.exports`. */
const { ServerTCP } = modbusSerial as unknown as { ServerTCP: typeof ServerTCPType };

/**
 * The demo's simulated Modbus TCP device ("Guardian demo simulator"): a boiler
 * whose values change over time. Only `guardian demo` starts it; `guardian run`
 * never does. Register map (unit 1, protocol addresses):
 *   holding 0-1   float32 temperature °C (slow sine around the setpoint)
 *   holding 2     uint16  pressure in 0.01 bar
 *   holding 3-4   uint32  run counter (ticks every second)
 *   holding 5     uint16  status bits (bit 0 burner on, bit 1 pump on)
 *   holding 10-13 string  "SIM-0001"
 *   holding 20-21 float32 setpoint °C (65 at start; the only writable registers)
 *   input 0       int16   supply voltage in 0.1 V
 *   coil 0        alarm (on for 5 s every 30 s)
 */
export class DemoSimulator {
  private server: ServerTCPType | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly holding = new Uint16Array(32);
  private readonly input = new Uint16Array(8);
  private alarm = false;
  private static readonly WRITABLE = new Set([20, 21]);
  private readonly startedAt = Date.now();

  constructor(
    readonly host: string,
    readonly port: number,
    /** Connection-level errors (a client that went away); the simulator keeps serving. */
    private readonly onError: (err: Error) => void,
  ) {}

  async start(): Promise<void> {
    this.tick();
    const serial = Buffer.from('SIM-0001', 'latin1');
    for (let i = 0; i < 4; i++) this.holding[10 + i] = serial.readUInt16BE(i * 2);
    const setpoint = Buffer.alloc(4);
    setpoint.writeFloatBE(65);
    this.holding[20] = setpoint.readUInt16BE(0);
    this.holding[21] = setpoint.readUInt16BE(2);
    const server = new ServerTCP({
      getHoldingRegister: (addr: number) => this.register(this.holding, addr),
      getMultipleHoldingRegisters: (addr: number, length: number) => Array.from({ length }, (_, i) => this.register(this.holding, addr + i)),
      getInputRegister: (addr: number) => this.register(this.input, addr),
      getMultipleInputRegisters: (addr: number, length: number) => Array.from({ length }, (_, i) => this.register(this.input, addr + i)),
      getCoil: (addr: number) => (addr === 0 ? this.alarm : false),
      getDiscreteInput: () => false,
      setRegister: (addr: number, value: number) => {
        if (!DemoSimulator.WRITABLE.has(addr)) throw Object.assign(new Error('illegal data address'), { modbusErrorCode: 2 });
        this.holding[addr] = value;
      },
      setCoil: () => { throw Object.assign(new Error('illegal data address'), { modbusErrorCode: 2 }); },
    }, { host: this.host, port: this.port, unitID: 1 });
    this.server = server;
    server.on('error', (err?: Error | null) => this.onError(err ?? new Error('simulator error')));
    server.on('socketError', (err?: Error | null) => this.onError(err ?? new Error('simulator socket error')));
    await new Promise<void>((resolve, reject) => {
      server.on('initialized', () => resolve());
      server.on('serverError', (err?: Error | null) => reject(err ?? new Error('simulator could not listen')));
    });
    this.timer = setInterval(() => this.tick(), 500);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private register(table: Uint16Array, addr: number): number {
    if (addr >= table.length) throw Object.assign(new Error('illegal data address'), { modbusErrorCode: 2 });
    return table[addr] ?? 0;
  }

  private tick(): void {
    const t = (Date.now() - this.startedAt) / 1000;
    const sp = Buffer.alloc(4);
    sp.writeUInt16BE(this.holding[20] ?? 0, 0);
    sp.writeUInt16BE(this.holding[21] ?? 0, 2);
    const setpoint = sp.readFloatBE(0);
    const temperature = (Number.isFinite(setpoint) ? setpoint : 65) + 8 * Math.sin(t / 20) + (Math.random() - 0.5) * 0.2;
    const f32 = Buffer.alloc(4);
    f32.writeFloatBE(temperature);
    this.holding[0] = f32.readUInt16BE(0);
    this.holding[1] = f32.readUInt16BE(2);
    this.holding[2] = Math.round(150 + 20 * Math.sin(t / 7));
    const counter = Math.floor(t);
    this.holding[3] = (counter >>> 16) & 0xffff;
    this.holding[4] = counter & 0xffff;
    const burner = temperature < setpoint + 1 ? 1 : 0;
    this.holding[5] = burner | 2;
    this.input[0] = Math.round(2300 + 30 * Math.sin(t / 3)) & 0xffff;
    this.alarm = t % 30 < 5;
  }
}
