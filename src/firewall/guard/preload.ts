/**
 * Code that runs before the entry module arms the guard: `--import`,
 * `--require`/`-r`, `--loader`/`--experimental-loader` (in the command line or
 * in NODE_OPTIONS) and the inspector flags. Such code can keep the original
 * functions and call them after arming, which no in-process hook can stop;
 * `guardian run` refuses to start with any of them (GUARDIAN_E_PRELOAD).
 */
const FLAGS = ['--import', '--require', '-r', '--loader', '--experimental-loader', '--inspect', '--inspect-brk', '--inspect-wait', '--inspect-port', '--debug-port', '--env-file'];

function named(token: string): string | undefined {
  const name = token.split('=')[0] ?? '';
  if (FLAGS.includes(name)) return name;
  if (/^-r./.test(token)) return '-r';
  return undefined;
}

/** The preload and debugger flags in `execArgv` and NODE_OPTIONS, as written. */
export function preloadFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const found: string[] = [];
  for (const token of execArgv) if (named(token) !== undefined) found.push(token);
  // NODE_OPTIONS: split on blanks, quotes removed; a flag name anywhere counts (fail closed)
  for (const token of (nodeOptions ?? '').replace(/["']/g, ' ').split(/\s+/)) if (token !== '' && named(token) !== undefined) found.push(`NODE_OPTIONS ${token}`);
  return found;
}
