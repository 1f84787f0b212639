import type { UpstreamMessage } from '../../core/types.js';

/** The generic-broker topic layout (DESIGN.md, README "Topics"). */
export class Topics {
  constructor(
    private readonly prefix: string,
    private readonly gatewayId: string,
  ) {}

  get base(): string {
    return `${this.prefix}/${this.gatewayId}`;
  }

  /** Retained `online` / `offline`; the last will is `offline`. */
  get state(): string {
    return `${this.base}/state`;
  }

  get health(): string {
    return `${this.base}/health`;
  }

  get failure(): string {
    return `${this.base}/failure`;
  }

  telemetry(device: string): string {
    return `${this.base}/${device}/telemetry`;
  }

  command(device: string, name: string): string {
    return `${this.base}/${device}/command/${name}`;
  }

  reply(device: string, name: string): string {
    return `${this.base}/${device}/reply/${name}`;
  }

  for(message: UpstreamMessage): string {
    switch (message.kind) {
      case 'telemetry':
        return this.telemetry(message.device ?? 'unknown');
      case 'health':
        return this.health;
      case 'failure':
        return this.failure;
    }
  }
}
