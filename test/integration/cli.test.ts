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
let warningsFile: string;

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
  warningsFile = join(dir, 'warnings.yaml');
  await writeFile(
    warningsFile,
    `listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  api: {endpoints: [http://127.0.0.1:9]}
routes:
  - {name: api, upstream: api, timeout: 1s, retry: {perTryTimeout: 2s}}
  - {name: health, upstream: api, match: {path: /health}}
`,
  );
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
      `${invalidFile}:6:15 routes[0](api).upstream: unknown upstream "apii" (did you mean "api"?)`,
      `${invalidFile}:8:7 routes[0](api).retry.retryon: unknown key "retryon" (did you mean "retryOn"?)`,
      `${otherInvalidFile}:1:1 routez: unknown key "routez" (did you mean "routes"?)`,
    ]);
    expect(lines(result.stdout)).toEqual([`${validFile}: ok`]);
  });

  it('reports the problems of every step in one run, in file order', async () => {
    const file = join(dir, 'many.yaml');
    await writeFile(
      file,
      `listeners:
  - {name: outbound, address: 127.0.0.1:15001}
  - {name: inbound, address: "0.0.0.0:99999"}
upstreams:
  payments:
    endpoints: [http://payments:8080, "https://payments:8443"]
    circuitBreaker: {failureRate: 2}
routes:
  - name: charge
    listener: outbond
    upstream: payment
    timeout: soon
  - name: refund
    upstream: payments
    retry: {maxAttempts: 3, retryOn: [404], perTryTimout: 1s}
`,
    );

    const result = await breakwater(['validate', file]);

    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      `${file}:3:30 listeners[1](inbound).address: port must be from 1 to 65535 (or 0 for any free port), got 99999`,
      `${file}:6:39 upstreams.payments.endpoints[1]: only http:// endpoints are supported (Breakwater does not speak TLS to upstreams), got "https://payments:8443"`,
      `${file}:7:35 upstreams.payments.circuitBreaker.failureRate: must be a ratio: a number from 0 to 1, or a percentage string such as "20%"`,
      `${file}:10:15 routes[0](charge).listener: unknown listener "outbond" (did you mean "outbound"?)`,
      `${file}:11:15 routes[0](charge).upstream: unknown upstream "payment" (did you mean "payments"?)`,
      `${file}:12:14 routes[0](charge).timeout: must be a duration: a number with a unit ms, s, m, h or d (250ms, 1.5s, 1m, 7d) or integer milliseconds`,
      `${file}:15:39 routes[1](refund).retry.retryOn[0]: 404 cannot be retried: retryOn may list 429 but no other 4xx`,
      `${file}:15:45 routes[1](refund).retry.perTryTimout: unknown key "perTryTimout" (did you mean "perTryTimeout"?)`,
    ]);
    expect(result.stdout).toBe('');
  });

  it('exits 0 on warnings alone, printed on stderr and marked, the file still ok', async () => {
    const result = await breakwater(['validate', warningsFile, validFile]);

    expect(result.code).toBe(0);
    expect(lines(result.stderr)).toEqual([
      `${warningsFile}:7:68 routes[0](api).retry.perTryTimeout: warning: perTryTimeout 2s is longer than the route timeout 1s, which covers all attempts: the route timeout ends an attempt first, so the per-try timeout never takes effect`,
      `${warningsFile}:8:5 routes[1](health): warning: never used: routes[0](api) comes first on listener outbound and matches every request this route matches (the first matching route wins)`,
    ]);
    expect(lines(result.stdout)).toEqual([`${warningsFile}: ok (2 warnings)`, `${validFile}: ok`]);
  });

  it('exits 1 when a file has errors and warnings, printing both in file order', async () => {
    const file = join(dir, 'both.yaml');
    await writeFile(
      file,
      `upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - {name: all, upstream: api}
  - {name: orders, upstream: api, match: {pathPrefix: /orders}}
  - {name: typo, upstream: api, timeout: 1z, match: {host: other}}
`,
    );

    const result = await breakwater(['validate', file]);

    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      `${file}:5:5 routes[1](orders): warning: never used: routes[0](all) comes first on listener outbound and matches every request this route matches (the first matching route wins)`,
      `${file}:6:5 routes[2](typo): warning: never used: routes[0](all) comes first on listener outbound and matches every request this route matches (the first matching route wins)`,
      `${file}:6:42 routes[2](typo).timeout: must be a duration: a number with a unit ms, s, m, h or d (250ms, 1.5s, 1m, 7d) or integer milliseconds`,
    ]);
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

describe('breakwater explain', () => {
  it("explains the README tour's requests on the shipped example config, found where run finds it", async () => {
    const matched = await breakwater(['explain', 'GET', 'http://demo/status/503', '-H', 'x-request-timeout-ms: 800']);
    const missed = await breakwater(['explain', 'GET', 'http://example.com/']);

    expect(matched.code).toBe(0);
    expect(lines(matched.stdout).slice(0, 5)).toEqual([
      'GET http://demo/status/503 on listener outbound',
      'route     demo-status (config/breakwater.yaml:75)',
      'upstream  demo: http://127.0.0.1:18080',
      "deadline  800ms, the caller's budget x-request-timeout-ms: 800 (the route timeout is 2s)",
      'per try   500ms, retry.perTryTimeout; the upstream is told x-request-timeout-ms: 500',
    ]);
    expect(missed.code).toBe(1);
    expect(missed.stdout).toContain('closest route: demo (config/breakwater.yaml:137), which fails on host');
  });

  it('exits 2 on an invalid file, with its problems on stderr', async () => {
    const result = await breakwater(['explain', '--config', invalidFile, 'GET', 'http://payments/']);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${invalidFile}:`);
    expect(result.stderr).toContain('is not a valid config; nothing to explain');
  });
});

describe('breakwater run', () => {
  it('refuses an invalid file: the problems on stderr, exit 2', async () => {
    const result = await breakwater(['run', '--config', invalidFile]);

    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([
      `${invalidFile}:6:15 routes[0](api).upstream: unknown upstream "apii" (did you mean "api"?)`,
      `${invalidFile}:8:7 routes[0](api).retry.retryon: unknown key "retryon" (did you mean "retryOn"?)`,
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
  it('starts on a file with warnings and logs them at warn level', async () => {
    const child = spawn(command, [...prefix, 'run', '--config', warningsFile], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const logged = await new Promise<Record<string, unknown>[]>((resolve, reject) => {
        const seen: Record<string, unknown>[] = [];
        const timer = setTimeout(() => reject(new Error(`no config warnings within ${EXIT_WITHIN_MS}ms`)), EXIT_WITHIN_MS);
        createInterface({ input: child.stdout }).on('line', (line) => {
          if (!line.startsWith('{')) return;
          seen.push(JSON.parse(line) as Record<string, unknown>);
          if (!line.includes('config warnings')) return;
          clearTimeout(timer);
          resolve(seen);
        });
        void exited.then((code) => reject(new Error(`exited with ${code}`)));
      });

      expect(logged.map((line) => line.msg)).toContain('breakwater started');
      expect(logged.at(-1)).toMatchObject({
        level: 40,
        msg: 'config warnings',
        config: warningsFile,
        warnings: [
          expect.stringMatching(/^.*warnings\.yaml:7:68 routes\[0\]\(api\)\.retry\.perTryTimeout: warning: perTryTimeout 2s is longer/),
          expect.stringMatching(/^.*warnings\.yaml:8:5 routes\[1\]\(health\): warning: never used/),
        ],
      });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
