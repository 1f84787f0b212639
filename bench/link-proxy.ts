// A TCP pass-through whose link can be cut (the idea of test/fixtures/proxy.ts), as
// its own process for the benchmarks (bench/lib.ts startLinkProxy):
//   node --import tsx bench/link-proxy.ts TARGET_PORT [up|down]
// Listens on 127.0.0.1 (a free port), prints {"port":N} on stdout, then answers one
// line per stdin command: "up" / "down" -> "ok"; "refused" -> connections accepted
// and destroyed while down. Down: every open connection is dropped and new ones are
// accepted and destroyed at once (the client sees its connection closed). Exits on stdin EOF.
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const target = Number(process.argv[2]);
if (!Number.isInteger(target) || target <= 0) throw new Error('usage: link-proxy.ts TARGET_PORT [up|down]');
let isUp = process.argv[3] !== 'down';
let refused = 0;
const open = new Set<Socket>();

const server = createServer((client) => {
  if (!isUp) {
    refused += 1;
    client.destroy();
    return;
  }
  client.setNoDelay(true);
  const upstream = connect(target, '127.0.0.1');
  upstream.setNoDelay(true);
  open.add(client);
  open.add(upstream);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
    open.delete(client);
    open.delete(upstream);
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
  client.pipe(upstream);
  upstream.pipe(client);
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

createInterface({ input: process.stdin })
  .on('line', (line) => {
    switch (line.trim()) {
      case 'up':
        isUp = true;
        process.stdout.write('ok\n');
        break;
      case 'down':
        isUp = false;
        for (const s of open) s.destroy();
        open.clear();
        process.stdout.write('ok\n');
        break;
      case 'refused':
        process.stdout.write(`${refused}\n`);
        break;
      default:
        process.stdout.write(`error: unknown command ${line}\n`);
    }
  })
  .on('close', () => {
    for (const s of open) s.destroy();
    server.close();
    process.exit(0);
  });
