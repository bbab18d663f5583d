#!/usr/bin/env node
// The `skipgrad` command (package.json "bin"): runs the built command line, dist/src/cli.js, which `npm run build`
// makes from src/. This file is committed so that the command exists before any build: npx links a project's bin
// once, on first use, and links nothing (then or later: "skipgrad: not found") when the file is missing. Without
// a build it says what to run.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write(`skipgrad: the command line is not built (${fileURLToPath(cli)} is missing): run 'npm run build' in ${fileURLToPath(new URL('..', import.meta.url))} first, and again after changing src/\n`);
  process.exit(2);
}
await import(cli.href);
