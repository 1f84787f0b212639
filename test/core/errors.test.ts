import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ErrorCodes, GuardianError, hasCode, isTransient, toGuardianError } from '../../src/core/errors.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const codes = Object.keys(ErrorCodes);

t.test('every code is GUARDIAN_E_ and documented in the README error table', async (t) => {
  const readme = readFileSync('README.md', 'utf8');
  for (const code of codes) {
    t.match(code, /^GUARDIAN_E_[A-Z0-9_]+$/);
    t.match(readme, new RegExp(`\\| \`${code}\` \\|`), `${code} has a row in the README`);
  }
  const documented = [...readme.matchAll(/\| `(GUARDIAN_E_[A-Z0-9_]+)` \|/g)].map((m) => m[1]);
  t.same([...documented].sort(), [...codes].sort(), 'the README documents exactly the registered codes, each once');
});

t.test('every code used in src/ is registered', async (t) => {
  const used = new Set(sources('src').flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/GUARDIAN_E_[A-Z0-9_]+/g)].map((m) => m[0])));
  for (const code of used) t.ok(code in ErrorCodes, `${code} is in the registry`);
});

t.test('decisions go by code', async (t) => {
  const timeout = new GuardianError('GUARDIAN_E_MODBUS_TIMEOUT', 'x', { device: 'd' });
  t.ok(isTransient(timeout));
  t.notOk(isTransient(new GuardianError('GUARDIAN_E_CONFIG_INVALID', 'x')));
  t.notOk(isTransient(new Error('GUARDIAN_E_MODBUS_TIMEOUT')), 'message text never decides');
  t.ok(hasCode(timeout, 'GUARDIAN_E_MODBUS_TIMEOUT'));
  const wrapped = toGuardianError(new Error('boom'), 'GUARDIAN_E_MQTT_PUBLISH');
  t.equal(wrapped.code, 'GUARDIAN_E_MQTT_PUBLISH');
  t.equal((wrapped.cause as Error).message, 'boom');
  t.same(timeout.toJSON(), { code: 'GUARDIAN_E_MODBUS_TIMEOUT', message: 'x', hint: ErrorCodes.GUARDIAN_E_MODBUS_TIMEOUT.hint, device: 'd' });
});
