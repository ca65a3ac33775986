// What a running Breakwater has loaded: code stays resident for the life of the process, in
// every pod, so a config that does not use a feature must not load it. Watched through a
// module hook in the Breakwater process itself, on the example config `npm start` runs.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;

// Runs in the Breakwater process: notes every module it loads, and writes them down at exit
// with the built-in modules Node loaded for it.
const hook = `
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const loaded = [];
registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
process.on('exit', () => writeFileSync(process.env.LOADED_MODULES_FILE, JSON.stringify({ loaded, builtins: process.moduleLoadList })));
`;

/** The modules a Breakwater on `yaml` loaded from start to a drained stop, with `env` added. */
async function modulesLoaded(dir: string, yaml: string, env: Record<string, string> = {}): Promise<{ loaded: string[]; builtins: string[] }> {
  const configPath = join(dir, 'breakwater.yaml');
  const hookPath = join(dir, 'hook.mjs');
  const listPath = join(dir, 'loaded.json');
  await writeFile(configPath, yaml);
  await writeFile(hookPath, hook);
  const child = spawn(process.execPath, ['--import', hookPath, join(root, 'src/cli/main.ts'), 'run', '--config', configPath], {
    cwd: root,
    env: { ...process.env, LOADED_MODULES_FILE: listPath, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('"msg":"breakwater started"')) resolve();
    });
    void exited.then((code) => reject(new Error(`breakwater exited with ${code} before it started:\n${stderr}`)));
  });
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  return JSON.parse(await readFile(listPath, 'utf8')) as { loaded: string[]; builtins: string[] };
}

/** The example config `npm start` runs, on free ports, its state in `dir`. */
async function exampleConfig(dir: string): Promise<string> {
  return (await readFile(join(root, 'config/breakwater.yaml'), 'utf8'))
    .replace(/\b(127\.0\.0\.1|0\.0\.0\.0):(15001|15006|15020|15000)\b/g, '127.0.0.1:0')
    .replace(/path: "\$\{TMPDIR:-\/tmp\}\/breakwater\/state\.db"/, `path: "${dir}/state.db"`);
}

/** Packages and parts of packages that the example config has no use for. */
const unused = [
  ['TypeBox, which only builds the schema', '/node_modules/@sinclair/typebox/'],
  ["Ajv's compiler: the validator is compiled ahead of time", '/node_modules/ajv/dist/compile/'],
  ["undici's entry point, which loads every client undici has", '/node_modules/undici/index.js'],
  ['the OpenTelemetry SDK, without an OTLP endpoint', '/node_modules/@opentelemetry/sdk-'],
  ['the semantic conventions, without an OTLP endpoint', '/node_modules/@opentelemetry/semantic-conventions/'],
  ['the Redis client, without a redis store', '/node_modules/@redis/'],
  ['pino-pretty, without --log-format pretty', '/node_modules/pino-pretty/'],
  ['playwright, a test tool', '/node_modules/playwright'],
] as const;

describe('the modules a running Breakwater loads', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'breakwater-modules-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('on the example config, none that the config does not use', async () => {
    const { loaded, builtins } = await modulesLoaded(dir, await exampleConfig(dir));

    // The hook saw the process's own modules: a list this short would mean it saw nothing.
    expect(loaded.some((url) => url.endsWith('/src/app.ts'))).toBe(true);
    expect(loaded.some((url) => url.endsWith('/src/config/schema-validator.generated.ts'))).toBe(true);
    for (const [what, path] of unused) expect(loaded.filter((url) => url.includes(path)), what).toEqual([]);
    // Node's own bundled undici, which an ES import of node:http's values would load.
    expect(builtins.filter((name) => name.includes('internal/deps/undici')), "Node's bundled undici").toEqual([]);
  });

  it('with an OTLP endpoint set, the OpenTelemetry SDK as well', async () => {
    const { loaded } = await modulesLoaded(dir, await exampleConfig(dir), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' });

    expect(loaded.some((url) => url.includes('/node_modules/@opentelemetry/sdk-'))).toBe(true);
  });
});
