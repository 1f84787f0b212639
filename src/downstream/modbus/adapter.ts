import type { Logger } from 'pino';
import type { BusConfig } from '../../config/types.js';
import { GuardianError } from '../../core/errors.js';
import type { DeviceCommand, DeviceStats, DownstreamAdapter, PollSink, WriteGate } from '../../core/types.js';
import { BusArbiter } from './arbiter.js';
import { ModbusCommands } from './command-executor.js';
import { DevicePoller } from './device.js';
import type { ModbusClient } from './transport.js';

export interface ModbusBusOptions {
  readonly bus: BusConfig;
  readonly sink: PollSink;
  readonly log: Logger;
  /** The write policy: every write command asks it before anything is sent. */
  readonly gate: WriteGate;
  /** Opens the bus transport; the default opens a real modbus-serial client. */
  readonly open?: (bus: BusConfig) => Promise<ModbusClient>;
}

/** One Modbus bus (serial line or TCP endpoint) with its devices: one component, one arbiter. */
export class ModbusBusAdapter implements DownstreamAdapter {
  readonly name: string;
  readonly devices: readonly string[];
  private arbiter: BusArbiter | undefined;
  private commands: ModbusCommands | undefined;
  private pollers: DevicePoller[] = [];
  private paused = false;

  constructor(private readonly options: ModbusBusOptions) {
    this.name = `modbus:${options.bus.name}`;
    this.devices = options.bus.devices.map((d) => d.name);
  }

  async start(): Promise<void> {
    const { bus, sink, open } = this.options;
    const log = this.options.log.child({ bus: bus.name });
    const arbiter = new BusArbiter(bus, log, open);
    this.arbiter = arbiter;
    this.commands = new ModbusCommands(bus.devices, bus.name, arbiter, this.options.gate, log.child({ component: 'commands' }));
    this.pollers = bus.devices.map((d) => new DevicePoller(d, bus.name, arbiter, sink, log.child({ device: d.name })));
    for (const poller of this.pollers) {
      poller.setPaused(this.paused);
      poller.start();
    }
    await Promise.resolve();
  }

  async stop(): Promise<void> {
    await Promise.all(this.pollers.map((p) => p.stop()));
    await this.arbiter?.close();
    this.arbiter = undefined;
    this.commands = undefined;
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    for (const poller of this.pollers) poller.setPaused(paused);
  }

  command(command: DeviceCommand): Promise<unknown> {
    if (this.commands === undefined) {
      return Promise.reject(new GuardianError('GUARDIAN_E_MODBUS_CONNECT', `bus ${this.options.bus.name} is not running`, { bus: this.options.bus.name, device: command.device }));
    }
    return this.commands.run(command);
  }

  deviceStats(): readonly DeviceStats[] {
    return this.pollers.map((p) => p.stats());
  }
}
