#!/usr/bin/env node
// Launcher for the installed package: runs the compiled CLI (`npm run build` writes dist/),
// or the TypeScript source directly in a checkout, which Node 24 can execute.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
const source = new URL('../src/cli/main.ts', import.meta.url);
const { runCli } = await import(existsSync(compiled) ? compiled.href : source.href);
process.exitCode = await runCli(process.argv.slice(2));
