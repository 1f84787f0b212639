import { GuardianError, type ErrorCode } from './errors.js';

/**
 * A file (config, manifest, or the pair of both) with every problem found in it,
 * one `<path>: <problem>` line each: the one error class for "here is the list",
 * so the CLI prints all of them the same way and decides by `code`, not by class.
 * The config's, the manifest's and the firewall coverage's errors are this class
 * with their codes narrowed (ConfigError, ManifestError, FirewallConfigError).
 */
export class ProblemListError<C extends ErrorCode = ErrorCode> extends GuardianError {
  declare readonly code: C;

  constructor(code: C, readonly source: string, readonly problems: readonly string[]) {
    super(code, `${source}: ${countProblems(problems.length)}\n${shownProblems(problems).join('\n')}`, { path: source });
  }
}

/** At most this many problems are shown; the rest are counted (`… and 7 more`). */
export const SHOWN_PROBLEMS = 20;

/** The problems a person reads: the first SHOWN_PROBLEMS, then `… and N more` when there are more. */
export function shownProblems(problems: readonly string[], max = SHOWN_PROBLEMS): string[] {
  if (problems.length <= max) return [...problems];
  return [...problems.slice(0, max), `… and ${problems.length - max} more`];
}

/** `1 problem`, `3 problems`. */
export function countProblems(n: number): string {
  return `${n} problem${n === 1 ? '' : 's'}`;
}
