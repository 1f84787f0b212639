import { GuardianError } from '../core/errors.js';

export const DEFAULT_CONFIG_PATH = '/etc/guardian/guardian.yaml';

/** Every problem of a config file, one `<path>: <problem>` line each. */
export class ConfigError extends GuardianError {
  constructor(code: 'GUARDIAN_E_CONFIG_PARSE' | 'GUARDIAN_E_CONFIG_INVALID', readonly source: string, readonly problems: readonly string[]) {
    super(code, `${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${problems.join('\n')}`, { path: source });
  }
}
