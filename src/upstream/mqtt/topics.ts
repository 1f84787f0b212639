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

  /** The subscription that receives every device's commands. */
  get commands(): string {
    return `${this.base}/+/command/+`;
  }

  /** `<base>/<device>/command/<name>` → its device and name; anything else → undefined. */
  parseCommand(topic: string): { device: string; name: string } | undefined {
    if (!topic.startsWith(`${this.base}/`)) return undefined;
    const parts = topic.slice(this.base.length + 1).split('/');
    if (parts.length !== 3 || parts[1] !== 'command' || parts[0] === '' || parts[2] === '') return undefined;
    return { device: parts[0] as string, name: parts[2] as string };
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
