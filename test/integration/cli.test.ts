import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'src/cli/main.ts');
const EXIT_WITHIN_MS = 20_000;

// The CLI is TypeScript run by Node 24's type stripping; vitest runs on that Node already
// (the `node` dev dependency), otherwise go through npx to reach it.
const onNode24 = Number(process.versions.node.split('.')[0]) >= 24;
const command = onNode24 ? process.execPath : 'npx';
const prefix = onNode24 ? [cli] : ['node', cli];

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function breakwater(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Finished> {
  const env = { ...process.env, ...options.env };
  if (!options.env?.BREAKWATER_CONFIG) delete env.BREAKWATER_CONFIG;
  const child = spawn(command, [...prefix, ...args], { cwd: options.cwd ?? root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`breakwater ${args.join(' ')} did not exit within ${EXIT_WITHIN_MS}ms`));
    }, EXIT_WITHIN_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '');

let dir: string;
let validFile: string;
let invalidFile: string;
let otherInvalidFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakwater-cli-'));
  validFile = join(dir, 'valid.yaml');
  invalidFile = join(dir, 'invalid.yaml');
  otherInvalidFile = join(dir, 'other.yaml');
  await writeFile(
    validFile,
    `listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  api: {endpoints: [http://127.0.0.1:9]}
routes:
  - {name: api, upstream: api, match: {host: api}}
`,
  );
  await writeFile(
    invalidFile,
    `upstreams:
  api:
    endpoints: [http://api:8080]
routes:
  - name: api
    upstream: apii
    retry:
      retryon: [503]
`,
  );
  await writeFile(otherInvalidFile, 'routez: []\n');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('breakwater validate', () => {
  it('exits 0 and says ok for each valid file', async () => {
    const result = await breakwater(['validate', validFile, join(root, 'config/breakwater.yaml')]);

    expect(result.code).toBe(0);
    expect(lines(result.stdout)).toEqual([`${validFile}: ok`, `${join(root, 'config/breakwater.yaml')}: ok`]);
    expect(result.stderr).toBe('');
  });

  it('exits 1 with one FILE:LINE:COL field.path: message line per problem', async () => {
    const result = await breakwater(['validate', invalidFile, validFile, otherInvalidFile]);

    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      `${invalidFile}:8:7 routes[0].retry.retryon: unknown key "retryon" (did you mean "retryOn"?)`,
      `${otherInvalidFile}:1:1 routez: unknown key "routez" (did you mean "routes"?)`,
    ]);
    expect(lines(result.stdout)).toEqual([`${validFile}: ok`]);
  });

  it('reports a missing file instead of crashing', async () => {
    const missing = join(dir, 'missing.yaml');
    const result = await breakwater(['validate', missing]);

    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([`${missing}:1:1: cannot read the file (ENOENT)`]);
  });

  it('needs at least one file', async () => {
    const result = await breakwater(['validate']);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('validate needs at least one FILE');
  });
});

describe('breakwater version', () => {
  it('prints the package version', async () => {
    const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
    const result = await breakwater(['version']);

    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
  });
});

describe('breakwater run', () => {
  it('refuses an invalid file: the problems on stderr, exit 2', async () => {
    const result = await breakwater(['run', '--config', invalidFile]);

    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([
      `${invalidFile}:8:7 routes[0].retry.retryon: unknown key "retryon" (did you mean "retryOn"?)`,
      `breakwater: ${invalidFile} is not a valid config; not starting`,
    ]);
  });

  it('reads $BREAKWATER_CONFIG when there is no --config, and --config wins over it', async () => {
    const fromEnv = await breakwater(['run'], { env: { BREAKWATER_CONFIG: otherInvalidFile } });
    const fromFlag = await breakwater(['run', '--config', invalidFile], { env: { BREAKWATER_CONFIG: otherInvalidFile } });

    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toContain(`${otherInvalidFile}:1:1 routez`);
    expect(fromFlag.code).toBe(2);
    expect(fromFlag.stderr).toContain(`${invalidFile}:8:7`);
    expect(fromFlag.stderr).not.toContain(otherInvalidFile);
  });

  it('falls back to config/breakwater.yaml in the working directory', async () => {
    const cwd = join(dir, 'workdir');
    await mkdir(join(cwd, 'config'), { recursive: true });
    await writeFile(join(cwd, 'config/breakwater.yaml'), 'routes: {}\n');

    const result = await breakwater(['run'], { cwd });

    expect(result.code).toBe(2);
    expect(lines(result.stderr)[0]).toBe('config/breakwater.yaml:1:9 routes: must be a list');
  });

  it('writes human-readable log lines with --log-format pretty, and refuses an unknown format', async () => {
    const child = spawn(command, [...prefix, 'run', '--config', validFile, '--log-format', 'pretty'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start within ${EXIT_WITHIN_MS}ms`)), EXIT_WITHIN_MS);
        createInterface({ input: child.stdout }).on('line', (text) => {
          if (!text.includes('breakwater started')) return;
          clearTimeout(timer);
          resolve(text);
        });
      });
      // A level and a message a person reads, not a JSON object.
      expect(line).toMatch(/INFO.*breakwater started/);
      expect(() => JSON.parse(line) as unknown).toThrow();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }

    const unknown = await breakwater(['run', '--config', validFile, '--log-format', 'xml']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--log-format must be json or pretty');
  });

  it('starts on a valid file and keeps serving until SIGTERM', async () => {
    const child = spawn(command, [...prefix, 'run', '--config', validFile], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start within ${EXIT_WITHIN_MS}ms: ${stderr}`)), EXIT_WITHIN_MS);
        createInterface({ input: child.stdout }).on('line', (line) => {
          if (!line.includes('breakwater started')) return;
          clearTimeout(timer);
          resolve(JSON.parse(line) as Record<string, unknown>);
        });
        void exited.then((code) => reject(new Error(`exited with ${code} before starting: ${stderr}`)));
      });
      const { listeners } = started as { listeners: { outbound: number } };

      // The outbound listener answers: a path with no route gets Breakwater's own 404.
      const reason = await new Promise<string | string[] | undefined>((resolve, reject) => {
        get({ host: '127.0.0.1', port: listeners.outbound, path: '/', headers: { host: 'unknown' } }, (response) => {
          response.resume();
          resolve(response.headers['x-breakwater-reason']);
        }).once('error', reject);
      });
      expect(reason).toBe('no_route');

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
