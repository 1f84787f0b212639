// The link proxy of test/fixtures/proxy.ts (createLinkProxy: a TCP pass-through
// whose link can be cut) as its own process for the benchmarks (bench/lib.ts startLinkProxy):
//   node --import tsx bench/link-proxy.ts TARGET_PORT [up|down]
// Listens on 127.0.0.1 (a free port), prints {"port":N} on stdout, then answers one
// line per stdin command: "up" / "down" -> "ok"; "refused" -> connections accepted
// and destroyed while down. Down: every open connection is dropped and new ones are
// accepted and destroyed at once (the client sees its connection closed). Exits on stdin EOF.
import { createInterface } from 'node:readline';
import { createLinkProxy } from '../test/fixtures/proxy.js';

const target = Number(process.argv[2]);
if (!Number.isInteger(target) || target <= 0) throw new Error('usage: link-proxy.ts TARGET_PORT [up|down]');
const proxy = await createLinkProxy(target, { initiallyUp: process.argv[3] !== 'down', noDelay: true });
process.stdout.write(`${JSON.stringify({ port: proxy.port })}\n`);

createInterface({ input: process.stdin })
  .on('line', (line) => {
    switch (line.trim()) {
      case 'up':
        proxy.up();
        process.stdout.write('ok\n');
        break;
      case 'down':
        proxy.down();
        process.stdout.write('ok\n');
        break;
      case 'refused':
        process.stdout.write(`${proxy.refused()}\n`);
        break;
      default:
        process.stdout.write(`error: unknown command ${line}\n`);
    }
  })
  .on('close', () => {
    void proxy.close().then(() => process.exit(0));
  });
