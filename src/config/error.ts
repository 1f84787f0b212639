import { ProblemListError } from '../core/problems.js';

export const DEFAULT_CONFIG_PATH = '/etc/guardian/guardian.yaml';

/** Every problem of a config file, one `<path>: <problem>` line each. */
export class ConfigError extends ProblemListError<'GUARDIAN_E_CONFIG_PARSE' | 'GUARDIAN_E_CONFIG_INVALID'> {}
