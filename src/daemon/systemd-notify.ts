import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import { systemBinary } from '../core/system-bin.js';

/** systemd-notify by absolute path: the firewall guard trusts exactly this path. */
export const SYSTEMD_NOTIFY = systemBinary('systemd-notify');

/**
 * systemd readiness and watchdog (Type=notify, NotifyAccess=all, WatchdogSec=).
 * Node has no Unix datagram sockets, so messages go through `systemd-notify`.
 * `READY=1` once the daemon runs; `WATCHDOG=1` from a timer every half of
 * WATCHDOG_USEC, so the pings stop when the event loop hangs and systemd
 * restarts the service. Outside systemd (no NOTIFY_SOCKET) it does nothing.
 */
export class SystemdNotifier {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get active(): boolean {
    return this.env['NOTIFY_SOCKET'] !== undefined && this.env['NOTIFY_SOCKET'] !== '';
  }

  /** The daemon is up: tell systemd, and start the watchdog pings if systemd asked for them. */
  ready(): void {
    if (!this.active) return;
    this.send(['--ready', `MAINPID=${process.pid}`, 'STATUS=running']);
    const usec = Number(this.env['WATCHDOG_USEC']);
    const forPid = this.env['WATCHDOG_PID'];
    if (!Number.isFinite(usec) || usec <= 0 || (forPid !== undefined && forPid !== '' && Number(forPid) !== process.pid)) return;
    const everyMs = Math.max(50, Math.floor(usec / 2000));
    this.timer = setInterval(() => this.send(['WATCHDOG=1']), everyMs);
    this.log.info({ everyMs }, 'systemd watchdog pings enabled');
  }

  stopping(): void {
    clearInterval(this.timer);
    if (this.active) this.send(['STOPPING=1', 'STATUS=stopping']);
  }

  private send(args: readonly string[]): void {
    // a pinned environment: the socket only (no LD_PRELOAD or the like reaches the helper; the firewall checks it)
    execFile(SYSTEMD_NOTIFY, [...args], { env: { NOTIFY_SOCKET: this.env['NOTIFY_SOCKET'] }, timeout: 5000 }, (err) => {
      if (err !== null) this.log.warn({ err, args }, 'systemd-notify failed');
    });
  }
}
