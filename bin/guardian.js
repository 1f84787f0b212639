#!/usr/bin/env node
// The installed entry point: runs the compiled CLI (npm install builds dist/ through `prepare`).
import { main } from '../dist/gateway/cli.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err); process.exitCode = 1; },
);
