#!/usr/bin/env node
// Launcher: in a checkout, the TypeScript source, which Node 24 runs directly (a dist/ left
// from an earlier build may be stale); in the installed package, which ships no source, the
// compiled CLI.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
const source = new URL('../src/cli/main.ts', import.meta.url);
const { runCli } = await import(existsSync(source) ? source.href : compiled.href);
process.exitCode = await runCli(process.argv.slice(2));
