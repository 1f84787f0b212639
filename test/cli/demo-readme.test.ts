// The README's "The demo" quotes the banner `guardian demo` prints, and its write example is the
// banner's own command with a subscriber started first: both are compared with the real demo's
// output (so they cannot drift), and the write example is run against it as a reader would.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { Test } from 'tap';
import { childEnv, GUARDIAN_BIN, withPreloadOptOut } from '../fixtures/cli.js';
import { freePort, killChild } from '../fixtures/ports.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const README_BROKER_PORT = '1883';

/** The first fenced block after `marker` in the README (its lines, without the fences). */
function blockAfter(marker: string): string[] {
  const from = README.indexOf(marker);
  if (from < 0) throw new Error(`README has no '${marker}'`);
  const open = README.indexOf('```', from);
  const body = README.indexOf('\n', open) + 1;
  return README.slice(body, README.indexOf('\n```', body)).split('\n');
}

/** A process whose stdout the test waits on, line by line. */
function watched(t: Test, child: ChildProcess): { text: () => string; waitFor: (re: RegExp) => Promise<string> } {
  let out = '';
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => { out += d.toString('utf8'); for (const w of [...waiters]) w(); });
  t.teardown(() => killChild(child, 'SIGTERM'));
  return {
    text: () => out,
    waitFor: (re) => new Promise((resolve, reject) => {
      const check = (): void => {
        const line = out.split('\n').find((l) => re.test(l));
        if (line === undefined) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(line);
      };
      const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no ${re} within 30 s; output:\n${out}`)); }, 30000);
      waiters.add(check);
      check();
    }),
  };
}

t.test('the README quotes the demo banner exactly, and its write example works as written', async (t) => {
  const port = String(await freePort());
  const demo = spawn(process.execPath, [GUARDIAN_BIN, ...withPreloadOptOut(['demo', '--port', port])], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  const out = watched(t, demo);
  await out.waitFor(/^ {2}stop {13}: Ctrl-C$/);
  const printed = out.text().split('\n');
  const banner = printed.slice(printed.indexOf('Guardian demo'), printed.findIndex((l) => l.startsWith('  stop ')) + 1);

  const quoted = blockAfter('## The demo');
  const readmeSim = /on 127\.0\.0\.1:(\d+)$/.exec(quoted[1] ?? '')?.[1] ?? 'missing';
  const realSim = /on 127\.0\.0\.1:(\d+)$/.exec(banner[1] ?? '')?.[1] ?? 'missing';
  // the only differences allowed: the ports (the README shows the broker on 1883)
  const asInReadme = banner.map((l) => l
    .replace(`127.0.0.1:${realSim}`, `127.0.0.1:${readmeSim}`)
    .replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${README_BROKER_PORT}`)
    .replaceAll(`-p ${port} `, `-p ${README_BROKER_PORT} `));
  t.same(asInReadme, quoted, 'the README\'s banner is what `guardian demo` prints');

  const example = blockAfter('Try it in the demo').filter((l) => l !== '');
  t.equal(example.length, 2, example.join('\n'));
  const [sub = '', pub = ''] = example;
  t.match(sub, /^mosquitto_sub .*-p 1883 .*reply/, 'subscribe first, with the port');
  t.equal(pub, (quoted.find((l) => l.includes('mosquitto_pub')) ?? 'missing').trim(), 'then the banner\'s own publish command');

  // run them as a reader pastes them (through a shell), on the port this demo got
  const withPort = (command: string): string => command.replace(`-p ${README_BROKER_PORT} `, `-p ${port} `);
  // -d: it says when its subscription is in place; stdbuf: line by line into the pipe
  const subscriber = spawn('sh', ['-c', `exec stdbuf -oL ${withPort(sub)} -d`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const replies = watched(t, subscriber);
  await replies.waitFor(/received SUBACK/);
  const publisher = spawn('sh', ['-c', withPort(pub)], { stdio: 'ignore' });
  t.equal(await new Promise((resolve) => publisher.on('exit', resolve)), 0, 'mosquitto_pub succeeded');
  const reply = await replies.waitFor(/^guardian\/demo-gateway\/demo-sim-boiler\/reply\/write /);
  t.match(JSON.parse(reply.slice(reply.indexOf(' ') + 1)), { status: 200, transaction: 't1', data: { point: 'setpoint', value: 70 } });
});
