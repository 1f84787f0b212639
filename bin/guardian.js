#!/usr/bin/env node
// The installed entry point: the entry module arms the firewall before anything else loads,
// then runs the compiled CLI (npm install builds dist/ through `prepare`). Nothing is built
// here: without dist/ it says so and exits 1.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/entry.js', import.meta.url);

if (!existsSync(fileURLToPath(entry))) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(`guardian: GUARDIAN_E_NOT_BUILT: guardian is not built: run \`npm run build\` (or \`npm install\`, which builds it) in ${root}\n`);
  process.exitCode = 1;
} else {
  const { start } = await import(entry.href);
  start(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err) => { console.error(err); process.exitCode = 1; },
  );
}
