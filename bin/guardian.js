#!/usr/bin/env node
// The installed entry point: the entry module arms the firewall before anything else loads,
// then runs the compiled CLI (npm install builds dist/ through `prepare`).
import { start } from '../dist/cli/entry.js';

start(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err); process.exitCode = 1; },
);
