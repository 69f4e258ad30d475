#!/usr/bin/env node
// The `wss` command (package.json "bin"): `wss connect <url>` and `wss serve`. See lib/cli/help.ts.
import { main } from './cli/main.js';

// A reader that went away (`wss serve --mode print | head -1`) ends the command, as SIGPIPE ends
// other tools, instead of crashing it with an unhandled 'error' event.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

// No top-level await and no import.meta: this file is also compiled to CommonJS (dist/cjs).
main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, script: process.argv[1] }).then(
  (status) => {
    // exitCode rather than exit(): stdout may still hold output for a pipe or a terminal.
    process.exitCode = status;
  },
  (error: unknown) => {
    process.stderr.write(`wss: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
