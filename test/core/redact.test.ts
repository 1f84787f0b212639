// redactUrl: whatever a user name or password holds (quotes, spaces, '@', '/',
// ':'), and whatever text surrounds the URL, the password never comes out; a
// text without credentials comes back unchanged.
import fc from 'fast-check';
import t from 'tap';
import type { Test } from 'tap';
import { hasUserinfo, redactUrl, REDACTED } from '../../src/core/redact.js';

const SEED = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);
const MARK = 'PW-MARK';

/** Runs a property; on failure fast-check's report (seed, counterexample) is the assertion message. */
function holds<Ts extends [unknown, ...unknown[]]>(t: Test, name: string, prop: fc.IProperty<Ts>): void {
  const details = fc.check(prop, { seed: SEED, numRuns: 2000 });
  t.notOk(details.failed, `${name} (seed ${SEED}; rerun with FC_SEED=${SEED})${details.failed ? `\n${fc.defaultReportMessage(details) ?? ''}` : ''}`);
}

const noMark = fc.string({ unit: 'binary' }).filter((s) => !s.includes(MARK));
const scheme = fc.constantFrom('mqtt', 'mqtts', 'tcp', 'tls', 'ssl', 'https', 'git+ssh');
const host = fc.domain();

void t.test('a password in a URL never survives, whatever it holds and whatever text is around it', async (t) => {
  holds(t, 'password hidden', fc.property(noMark, scheme, noMark, noMark, noMark, host, noMark, (before, s, user, pw1, pw2, h, after) => {
    const text = `${before}${s}://${user}:${pw1}${MARK}${pw2}@${h}:1883${after}`;
    const shown = redactUrl(text);
    return !shown.includes(MARK) && shown.includes(REDACTED) && hasUserinfo(text);
  }));
});

void t.test('text and URLs without credentials are left as they are', async (t) => {
  holds(t, 'no @ after a scheme: unchanged', fc.property(fc.string({ unit: 'binary' }).filter((x) => !x.includes('@')), scheme, host, fc.string().filter((x) => !x.includes('@')), (before, s, h, after) => {
    const text = `${before}${s}://${h}:8883/${after}`;
    return redactUrl(text) === text && !hasUserinfo(text);
  }));
  t.equal(redactUrl('mqtts://broker.example:8883'), 'mqtts://broker.example:8883');
  t.equal(redactUrl('mqtt://gw:s3cret@broker:1883'), 'mqtt://***@broker:1883');
  t.equal(redactUrl("broker mqtt://gw:p@ss w'rd@10.0.0.1:1883: connect ECONNREFUSED"), 'broker mqtt://***@10.0.0.1:1883: connect ECONNREFUSED');
  t.equal(redactUrl('admin@example.com wrote this'), 'admin@example.com wrote this', "an '@' before any scheme is not a URL's");
  t.notOk(hasUserinfo('myhub.azure-devices.net/devices/gw@1'), 'no scheme: not a URL');
});

void t.test('a password in a URL written without :// never survives either (issue 13: mqtt:user:pw@h, mqtt//user:pw@h, user:pw@h)', async (t) => {
  const pw = fc.string({ unit: 'binary' }).filter((s) => !s.includes(MARK) && !s.includes('@'));
  const shape = fc.constantFrom((u: string, p: string, h: string) => `mqtt:${u}:${p}@${h}:1883`, (u: string, p: string, h: string) => `mqtt//${u}:${p}@${h}:1883`, (u: string, p: string, h: string) => `${u}:${p}@${h}:1883`);
  const user = fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/);
  holds(t, 'password hidden without ://', fc.property(shape, user, pw, pw, host, fc.constantFrom('', "has no scheme (got '", 'option --url must name a host (got '), (make, u, p1, p2, h, before) => {
    const shown = redactUrl(`${before}${make(u, `${p1}${MARK}${p2}`, h)}')`);
    return !shown.includes(MARK) && shown.includes(REDACTED);
  }));
});
