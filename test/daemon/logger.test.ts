// The logger's error serialization (each cause once, a stack only for the unexpected), the choice
// of pretty or JSON, colours, and the pretty line itself — with real socket and DNS errors.
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import { GuardianError, isExpected, toGuardianError } from '../../src/core/errors.js';
import { redactUrl } from '../../src/core/redact.js';
import { joinOnce, messageOnce, serializeError } from '../../src/daemon/log-error.js';
import { parseLogFormat, resolveLogFormat, useColor } from '../../src/daemon/log-format.js';
import { createLogger } from '../../src/daemon/logger.js';
import { freePort } from '../fixtures/ports.js';

type Line = Record<string, unknown> & { err?: Record<string, unknown> };

/** createLogger writing into memory: the raw text, and the lines parsed when JSON. */
function memoryLogger(format: 'json' | 'pretty') {
  const chunks: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { chunks.push(chunk.toString('utf8')); done(); } });
  const log = createLogger('debug', sink, undefined, format);
  const text = (): string => chunks.join('');
  const lines = (): Line[] => text().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
  return { log, text, lines };
}

const count = (text: string, part: string): number => text.split(part).length - 1;

/** A real refused connection: a port that was free a moment ago, now closed. */
async function refused(): Promise<Error> {
  const port = await freePort();
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => { socket.destroy(); reject(new Error(`port ${port} unexpectedly accepted`)); });
    socket.on('error', resolve);
  });
}

/** A real DNS failure: .invalid never resolves (RFC 6761). */
async function unresolvable(): Promise<Error> {
  try {
    await lookup('broker.invalid');
  } catch (err) {
    return err as Error;
  }
  throw new Error('broker.invalid resolved');
}

t.test('a refused connection wrapped as the MQTT adapter wraps it: the cause once, no stack', async (t) => {
  const cause = await refused();
  t.equal((cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  const err = new GuardianError('GUARDIAN_E_MQTT_CONNECT', `broker mqtt://127.0.0.1:1: ${cause.message}`, { url: 'mqtt://127.0.0.1:1' }, { cause });
  const { log, lines } = memoryLogger('json');
  log.warn({ err }, err.message);
  const [line] = lines();
  t.equal(line?.err?.['code'], 'GUARDIAN_E_MQTT_CONNECT', 'the code stays');
  t.equal(line?.err?.['message'], err.message, 'the message as composed, nothing appended');
  t.equal(count(String(line?.err?.['message']), cause.message), 1, 'the cause text once');
  t.notOk('stack' in (line?.err ?? {}), 'an expected error has no stack');
  t.same(line?.err?.['context'], { url: 'mqtt://127.0.0.1:1' }, 'its context stays');
});

t.test('toGuardianError of a DNS failure: the message is the cause, said once', async (t) => {
  const cause = await unresolvable();
  t.equal((cause as NodeJS.ErrnoException).code, 'ENOTFOUND');
  const err = toGuardianError(cause, 'GUARDIAN_E_MQTT_CONNECT');
  const { log, lines } = memoryLogger('json');
  log.warn({ err }, 'connect failed');
  const message = String(lines()[0]?.err?.['message']);
  t.equal(message, cause.message);
  t.equal(count(message, 'broker.invalid'), 1);
});

t.test('joinOnce: contained, overlapping and separate texts', async (t) => {
  t.equal(joinOnce('device press: cannot open bus', 'cannot open bus'), 'device press: cannot open bus');
  t.equal(joinOnce('cannot open bus', 'cannot open bus: connect ECONNREFUSED'), 'cannot open bus: connect ECONNREFUSED');
  t.equal(joinOnce('device press: cannot open bus', 'cannot open bus: connect ECONNREFUSED'), 'device press: cannot open bus: connect ECONNREFUSED');
  t.equal(joinOnce('a: b', 'b: c: d'), 'a: b: c: d');
  t.equal(joinOnce('write denied', 'timeout'), 'write denied: timeout');
  t.equal(joinOnce('', 'x'), 'x');
  t.equal(joinOnce('x', ''), 'x');
});

t.test('a cause the message does not quote is appended once', async (t) => {
  const cause = await refused();
  const err = new GuardianError('GUARDIAN_E_MODBUS_CONNECT', 'cannot open bus plc', {}, { cause });
  t.equal(messageOnce(err), `cannot open bus plc: ${cause.message}`);
});

t.test('a cause that quotes a URL with credentials: redacted like the wrapped message, said once', async (t) => {
  const cause = new Error('connect to mqtt://user:s3cret@broker.invalid:1883 failed');
  const err = new GuardianError('GUARDIAN_E_MQTT_CONNECT', `broker mqtt://broker.invalid:1883: ${redactUrl(cause.message)}`, {}, { cause });
  t.equal(messageOnce(err), err.message);
  t.notMatch(messageOnce(new GuardianError('GUARDIAN_E_MQTT_CONNECT', 'broker unreachable', {}, { cause })), /s3cret/);
});

t.test('unexpected errors keep their stack: a plain Error, a TypeError, GUARDIAN_E_INTERNAL', async (t) => {
  const { log, lines } = memoryLogger('json');
  log.error({ err: new TypeError('x is not a function') }, 'bug');
  log.error({ err: new GuardianError('GUARDIAN_E_INTERNAL', 'impossible state') }, 'bug');
  log.error({ err: toGuardianError(new RangeError('out of range')) }, 'bug');
  const got = lines();
  t.equal(got.length, 3);
  for (const line of got) t.match(line.err?.['stack'], /\n\s+at /, `${String(line.err?.['message'])}: a stack`);
  t.equal(got[0]?.err?.['type'], 'TypeError', 'pino\'s shape: type');
});

t.test('isExpected decides by code, not by message', async (t) => {
  t.ok(isExpected(new GuardianError('GUARDIAN_E_WRITE_DENIED', 'internal error')));
  t.notOk(isExpected(new GuardianError('GUARDIAN_E_INTERNAL', 'write denied')));
  t.notOk(isExpected(new Error('GUARDIAN_E_WRITE_DENIED')));
  t.notOk(isExpected('a string'));
});

t.test('non-errors pass the serializer unchanged; a cycle of causes ends', async (t) => {
  t.equal(serializeError('text'), 'text');
  t.same(serializeError({ code: 1 }), { code: 1 });
  const a = new Error('a');
  const b = new Error('b', { cause: a });
  (a as { cause?: unknown }).cause = b;
  t.equal(messageOnce(b), 'b: a');
});

t.test('--log-format: auto by default, the three names, a usage error otherwise', async (t) => {
  t.equal(parseLogFormat(undefined), 'auto');
  for (const f of ['auto', 'pretty', 'json']) t.equal(parseLogFormat(f), f);
  for (const bad of ['', 'JSON', 'text', 'pretty ']) {
    t.throws(() => parseLogFormat(bad), { code: 'GUARDIAN_E_USAGE' }, `'${bad}'`);
  }
});

t.test('auto: pretty only on a terminal outside journald', async (t) => {
  t.equal(resolveLogFormat('auto', true, {}), 'pretty');
  t.equal(resolveLogFormat('auto', false, {}), 'json');
  t.equal(resolveLogFormat('auto', true, { JOURNAL_STREAM: '8:12345' }), 'json');
  t.equal(resolveLogFormat('pretty', false, { JOURNAL_STREAM: '8:12345' }), 'pretty');
  t.equal(resolveLogFormat('json', true, {}), 'json');
});

t.test('colours: FORCE_COLOR, then NO_COLOR, then a terminal that is not dumb', async (t) => {
  const cases: [boolean, Record<string, string>, boolean][] = [
    [true, {}, true],
    [true, { TERM: 'dumb' }, false],
    [false, {}, false],
    [true, { NO_COLOR: '1' }, false],
    [true, { NO_COLOR: '' }, true],
    [false, { FORCE_COLOR: '1' }, true],
    [false, { FORCE_COLOR: '' }, true],
    [true, { FORCE_COLOR: '0' }, false],
    [true, { FORCE_COLOR: 'false' }, false],
    [true, { FORCE_COLOR: '1', NO_COLOR: '1' }, true],
  ];
  for (const [tty, env, want] of cases) t.equal(useColor(tty, env), want, `tty ${tty} ${JSON.stringify(env)}`);
});

t.test('a pretty line: one line, the code, the cause once, no JSON, no stack for the expected', async (t) => {
  const cause = await refused();
  const err = new GuardianError('GUARDIAN_E_MQTT_CONNECT', `broker mqtt://127.0.0.1:1: ${cause.message}`, { url: 'mqtt://127.0.0.1:1' }, { cause });
  const { log, text } = memoryLogger('pretty');
  log.child({ component: 'upstream' }).warn({ err, retryInMs: 250 }, err.message);
  const out = text();
  t.equal(out.split('\n').filter((l) => l !== '').length, 1, out);
  t.match(out, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] WARN: \(upstream\) broker mqtt:\/\/127\.0\.0\.1:1: connect ECONNREFUSED 127\.0\.0\.1:\d+ GUARDIAN_E_MQTT_CONNECT retryInMs=250\n$/);
  t.equal(count(out, cause.message), 1);
  t.notMatch(out, /[{}]|\x1b\[/, 'no braces, no colour (the destination is not a terminal)');
});

t.test('a pretty line of an unexpected error carries its stack, indented', async (t) => {
  const { log, text } = memoryLogger('pretty');
  log.fatal({ err: new TypeError('deliberate'), code: 'GUARDIAN_E_INTERNAL' }, 'uncaughtException: exiting');
  const [head, ...rest] = text().trimEnd().split('\n');
  t.match(head, /FATAL: uncaughtException: exiting: deliberate GUARDIAN_E_INTERNAL$/);
  t.match(rest[0], /^ {4}TypeError: deliberate$/);
  t.ok(rest.slice(1).every((l) => l.startsWith('        at ')), rest.join('\n'));
});

/** Distinct words: no one is a substring of another (a fixed-width number in brackets). */
const word = (i: number): string => `<w${String(i).padStart(3, '0')}>`;

t.test('property: each distinct cause text appears once in err.message and in the pretty line, however the chain quotes it', async (t) => {
  const seed = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);
  // a chain, innermost first: each link either quotes its cause (`prefix: cause`), repeats it
  // verbatim (toGuardianError), or says something of its own; the log call's msg is the
  // error's message, a prefix of it, or its own text
  const link = fc.record({ kind: fc.constantFrom('quote', 'same', 'own'), guardian: fc.boolean() });
  const msgKind = fc.constantFrom('same', 'prefix', 'own');
  const prop = fc.property(fc.array(link, { minLength: 1, maxLength: 6 }), msgKind, (links, msg) => {
    let err: Error = new Error(word(0));
    const texts = [word(0)];
    links.forEach((l, i) => {
      const own = word(i + 1);
      const message = l.kind === 'quote' ? `${own}: ${err.message}` : l.kind === 'same' ? err.message : own;
      if (l.kind !== 'same') texts.push(own);
      err = l.guardian ? new GuardianError('GUARDIAN_E_MODBUS_CONNECT', message, {}, { cause: err }) : new Error(message, { cause: err });
    });
    const logged = msg === 'same' ? err.message : msg === 'prefix' ? `${word(900)}: ${err.message}` : word(900);
    const json = memoryLogger('json');
    json.log.warn({ err }, logged);
    const pretty = memoryLogger('pretty');
    pretty.log.warn({ err }, logged);
    const rendered = String(json.lines()[0]?.err?.['message']);
    const line = pretty.text().split('\n')[0] ?? ''; // the event line (a stack, for the unexpected, follows it)
    return texts.every((w) => count(rendered, w) === 1 && count(line, w) === 1) && (msg === 'same' || count(line, word(900)) === 1);
  });
  try {
    fc.assert(prop, { seed, numRuns: 300 });
    t.pass(`300 chains (seed ${seed})`);
  } catch (err) {
    t.fail(`seed ${seed} (FC_SEED=${seed} repeats it): ${err instanceof Error ? err.message : String(err)}`);
  }
});
