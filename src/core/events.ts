import type { Logger } from 'pino';

type Listener = (...args: never[]) => void;

/**
 * A typed event emitter whose listeners cannot crash the emitter: a throwing
 * listener is logged with the event name and the others still run.
 */
export class SafeEmitter<Events extends { [K in keyof Events]: Listener }> {
  private readonly listeners = new Map<keyof Events, Events[keyof Events][]>();

  constructor(private readonly log: Logger) {}

  on<E extends keyof Events>(event: E, listener: Events[E]): void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener);
    this.listeners.set(event, list);
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as (...a: Parameters<Events[E]>) => void)(...args);
      } catch (err) {
        this.log.error({ err, event: String(event) }, 'event listener threw');
      }
    }
  }
}
