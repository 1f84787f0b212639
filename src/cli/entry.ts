/**
 * The first module of the `guardian` process (bin/guardian.js loads it and
 * nothing else). For `guardian run` and `guardian demo` it installs the
 * in-process guard before any dependency is loaded: it imports only node:
 * built-ins and the guard, and loads the CLI (and with it everything else)
 * only afterwards, so no module can keep an unguarded `connect`, `lookup` or
 * `spawn`. Until the CLI arms it with the manifest, the guard allows nothing
 * (the demo: listening only, for its own broker and simulator).
 *
 * Preloaded code (`--import`, `--require`, `--loader`, in the command line or
 * NODE_OPTIONS) runs before this module and could keep the native functions
 * themselves; `guardian run` and `guardian demo` refuse to start with it
 * (GUARDIAN_E_PRELOAD), unless `--allow-preload` is given (tests, APM agents;
 * see the README: the handle-level hooks still hold, saved native functions
 * and workers do not).
 */
import { GuardianError } from '../core/errors.js';
import { CLOSED_POLICY, installGuard, preloadFlags, type Denial, type GuardPolicy } from '../firewall/guard/index.js';

const GUARDED = new Set(['run', 'demo']);
/** The daemon refuses preloaded code; the demo (127.0.0.1 only, no keys) warns in its log instead (`npm start` under a harness). */
const NO_PRELOAD = new Set(['run']);

/** The demo's policy until its manifest is written: its own broker and simulator may listen, nothing else. */
const DEMO_SETUP: GuardPolicy = { ...CLOSED_POLICY, allowsTcpListen: () => true };

function report(err: GuardianError): void {
  process.stderr.write(`guardian: ${err.code}: ${err.message}\n  ${err.hint}\n`);
}

/** Before arming there is no logger yet: refusals go to stderr as JSON lines (and to the log once armed). */
function early(denial: Denial): void {
  process.stderr.write(`${JSON.stringify({ level: 'warn', code: denial.error.code, kind: denial.kind, target: denial.target, layer: denial.layer, msg: denial.error.message })}\n`);
}

/** Install the guard if the command needs it, then run the CLI. Returns the exit code. */
export async function start(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && GUARDED.has(command)) {
    const flags = preloadFlags(process.execArgv, process.env['NODE_OPTIONS']);
    if (flags.length > 0 && NO_PRELOAD.has(command) && !rest.includes('--allow-preload')) {
      // the preloaded code already ran: close everything it may have started, say why, and stop now
      try {
        installGuard({ onDenied: early, onFault: report });
      } finally {
        report(new GuardianError('GUARDIAN_E_PRELOAD', `guardian ${command} does not start with code preloaded before its firewall (${flags.join(', ')}): such code could keep the unguarded network functions`, { flags: flags.join(' ') }));
        process.exit(1);
      }
    }
    try {
      installGuard({ setup: command === 'demo' ? DEMO_SETUP : CLOSED_POLICY, onDenied: early, onFault: report });
    } catch (err) {
      if (err instanceof GuardianError) return 1; // a part of the guard could not be installed (reported): fail closed
      throw err;
    }
  }
  const { main } = await import('./main.js');
  return main([...argv]);
}
