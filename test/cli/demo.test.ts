import { spawn } from 'node:child_process';
import t from 'tap';
import { childEnv } from '../fixtures/cli.js';
import { freePort } from '../fixtures/ports.js';

interface Output {
  text: string;
}

function waitForText(out: Output, re: RegExp, timeoutMs = 30000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = (): void => {
      const m = re.exec(out.text);
      if (m !== null) resolve(m);
      else if (Date.now() - started > timeoutMs) reject(new Error(`no ${re} in output within ${timeoutMs} ms:\n${out.text}`));
      else setTimeout(poll, 50);
    };
    poll();
  });
}

t.test('npm start runs the demo; the printed mosquitto_sub command shows live telemetry', async (t) => {
  const port = await freePort();
  // Exactly as the README says (npm start), with the documented port override.
  const demo = spawn('npm', ['start', '--silent'], { env: childEnv({ GUARDIAN_DEMO_PORT: String(port) }), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Output = { text: '' };
  demo.stdout.on('data', (d: Buffer) => { out.text += d.toString(); });
  demo.stderr.on('data', (d: Buffer) => { out.text += d.toString(); });
  const exited = new Promise<void>((resolve) => demo.on('exit', () => resolve()));
  t.teardown(async () => {
    if (demo.exitCode === null && demo.signalCode === null && demo.pid !== undefined) process.kill(-demo.pid, 'SIGKILL');
    await exited;
  });

  const banner = await waitForText(out, /embedded broker\s+: mqtt:\/\/127\.0\.0\.1:(\d+)/);
  t.equal(Number(banner[1]), port, 'the embedded broker listens on the requested port');
  t.match(out.text, /simulated device : Guardian demo simulator \(Modbus TCP\) on 127\.0\.0\.1:\d+/);
  const command = (await waitForText(out, /^\s+(mosquitto_sub .+)$/m))[1] ?? '';
  t.equal(command, `mosquitto_sub -h 127.0.0.1 -p ${port} -t 'guardian/#' -v`);

  // Run the printed command (through a shell, as a user would paste it) and read live data.
  const sub = spawn('sh', ['-c', `exec ${command}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const received: Output = { text: '' };
  sub.stdout.on('data', (d: Buffer) => { received.text += d.toString(); });
  t.teardown(() => { sub.kill('SIGKILL'); });
  await waitForText(received, /^guardian\/demo-gateway\/state \{"state":"online"/m);
  const lines = async (n: number): Promise<Record<string, unknown>[]> => {
    await waitForText(received, new RegExp(`(demo-sim-boiler/telemetry .*\\n[^]*){${n}}`));
    return received.text.split('\n').filter((l) => l.startsWith('guardian/demo-gateway/demo-sim-boiler/telemetry '))
      .map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)) as Record<string, unknown>);
  };
  const telemetry = await lines(3);
  const last = telemetry[telemetry.length - 1] as { seq: number; points: Record<string, unknown>; quality: Record<string, string> };
  t.ok(last.seq >= 3);
  t.type(last.points['pressure'], 'number');
  t.type(last.points['runSeconds'], 'number');
  t.ok(Object.values(last.quality).every((q) => q === 'good'), 'every point reads good');
  const runSeconds = telemetry.map((b) => (b['points'] as Record<string, number>)['runSeconds']);
  t.ok(new Set(runSeconds).size > 1, `values change over time (${runSeconds.join(',')})`);

  // Ctrl-C: the demo stops cleanly.
  process.kill(-(demo.pid ?? 0), 'SIGINT');
  await exited;
  t.match(out.text, /"msg":"guardian stopped"/);
});

t.test('guardian demo --port rejects a port in use with GUARDIAN_E_DEMO_PORT', async (t) => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const address = blocker.address();
  const busy = typeof address === 'object' && address !== null ? address.port : 0;
  const { runCli } = await import('../fixtures/cli.js');
  const res = await runCli(['demo', '--port', String(busy)]);
  t.equal(res.code, 1);
  t.match(res.stderr, new RegExp(`^guardian: GUARDIAN_E_DEMO_PORT: cannot listen on 127\\.0\\.0\\.1:${busy}`));
});
