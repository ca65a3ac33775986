// The container image, without a Docker engine: the Dockerfile's promises (official Node.js 24
// image, dev dependencies only while building, a non-root numeric user, an exec-form
// entrypoint), then what its stages do, step by step. The build stage's files are copied as its
// COPY instructions and .dockerignore select them, the package is built and packed, and the
// tarball is installed with production dependencies only into an empty folder, from which
// Breakwater validates the example configs and proxies a request.

import { execFile, spawn } from 'node:child_process';
import { connect as connectH2, createServer as createH2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { basename, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { DockerfileParser, Env } from 'dockerfile-ast';
import type { Instruction } from 'dockerfile-ast';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeEnvironment, nodeFlags } from '../../scripts/node-runtime.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const root = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);

const packageJson = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
  version: string;
  devDependencies: Record<string, string>;
};
const dockerfile = DockerfileParser.parse(await readFile(join(root, 'Dockerfile'), 'utf8'));
// A CommonJS module (`module.exports = factory`) whose types describe an ES default export.
const dockerignoreFactory = createRequire(import.meta.url)('@balena/dockerignore') as typeof import('@balena/dockerignore').default;
const dockerignore = dockerignoreFactory().add(await readFile(join(root, '.dockerignore'), 'utf8'));

interface Stage {
  readonly name: string | null;
  readonly image: string;
  readonly instructions: Instruction[];
}

/** The Dockerfile's stages, each with the instructions after its FROM. */
const stages: Stage[] = [];
for (const instruction of dockerfile.getInstructions()) {
  if (instruction.getKeyword() === 'FROM') {
    const from = dockerfile.getFROMs().find((candidate) => candidate.getRange().start.line === instruction.getRange().start.line)!;
    stages.push({ name: from.getBuildStage(), image: from.getImage() ?? '', instructions: [] });
  } else {
    stages.at(-1)?.instructions.push(instruction);
  }
}
const buildStage = stages.find((stage) => stage.name === 'build')!;
const runtimeStage = stages.at(-1)!;
const argumentsOf = (instruction: Instruction): string[] => instruction.getArguments().map((argument) => argument.getValue());
const flagsOf = (instruction: Instruction): string[] =>
  'getFlags' in instruction ? (instruction as Instruction & { getFlags(): { getName(): string }[] }).getFlags().map((flag) => flag.getName()) : [];
const jsonOf = (instruction: Instruction): string[] =>
  (instruction as Instruction & { getJSONStrings(): { getJSONValue(): string }[] }).getJSONStrings().map((value) => value.getJSONValue());
/** The build stage's COPY instructions from the build context: sources and destination. */
const contextCopies = buildStage.instructions
  .filter((instruction) => instruction.getKeyword() === 'COPY' && !flagsOf(instruction).includes('from'))
  .map((instruction) => {
    const args = argumentsOf(instruction);
    return { sources: args.slice(0, -1), destination: args.at(-1)! };
  });

describe('Dockerfile', () => {
  it('builds every stage on the official Node.js image of the version package.json pins', () => {
    const nodeVersion = dockerfile.getInitialARGs().find((arg) => arg.getProperty()?.getName() === 'NODE_VERSION')?.getProperty()?.getValue();
    expect(nodeVersion).toBe(packageJson.devDependencies.node);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.image).toBe('node:${NODE_VERSION}-bookworm-slim');
  });

  it('installs dev dependencies in the build stage only', () => {
    const installs = stages.flatMap((stage) =>
      stage.instructions
        .filter((instruction) => instruction.getKeyword() === 'RUN' && /\bnpm (ci|install)\b/.test(instruction.getArgumentsContent() ?? ''))
        .map((instruction) => ({ stage: stage.name, command: instruction.getArgumentsContent() ?? '' })),
    );
    expect(installs.filter(({ stage }) => stage === 'build')).toHaveLength(1);
    for (const { stage, command } of installs) if (stage !== 'build') expect(command).toContain('--omit=dev');
    // The runtime stage runs nothing: it only receives the files of the earlier stages.
    expect(runtimeStage.instructions.filter((instruction) => instruction.getKeyword() === 'RUN')).toEqual([]);
    expect(runtimeStage.instructions.filter((instruction) => instruction.getKeyword() === 'COPY').map(flagsOf)).toEqual([['from']]);
  });

  it('runs Breakwater as a non-root numeric user, as PID 1 through an exec-form entrypoint', () => {
    const users = runtimeStage.instructions.filter((instruction) => instruction.getKeyword() === 'USER').map((instruction) => argumentsOf(instruction)[0]);
    expect(users).toHaveLength(1);
    expect(users[0]).toMatch(/^[1-9][0-9]*(:[0-9]+)?$/);
    const entrypoint = runtimeStage.instructions.find((instruction) => instruction.getKeyword() === 'ENTRYPOINT')!;
    expect(jsonOf(entrypoint)).toEqual(['node', ...nodeFlags, '/app/bin/breakwater.js']);
    const command = runtimeStage.instructions.find((instruction) => instruction.getKeyword() === 'CMD')!;
    expect(jsonOf(command)).toEqual(['run']);
  });

  it('runs Node with the flags and environment that npm start and the benchmarks use', () => {
    const environment = Object.fromEntries(
      runtimeStage.instructions
        .filter((instruction): instruction is Env => instruction instanceof Env)
        .flatMap((instruction) => instruction.getProperties().map((property) => [property.getName(), property.getValue()])),
    );
    expect(environment).toMatchObject(nodeEnvironment);
  });

  it('copies only files that .dockerignore lets into the build context, and keeps local builds and dependencies out', async () => {
    for (const { sources } of contextCopies) {
      for (const source of sources) {
        await expect(stat(join(root, source)), source).resolves.toBeDefined();
        expect(dockerignore.ignores(source), source).toBe(false);
      }
    }
    for (const excluded of ['node_modules/undici/package.json', 'dist/cli/main.js', '.git/HEAD', 'coverage/coverage-summary.json', 'test/integration/package.test.ts']) {
      expect(dockerignore.ignores(excluded), excluded).toBe(true);
    }
  });
});

describe('the package, installed as the image installs it', () => {
  let work: string;
  let tarball: string;
  let app: string;
  let packed: string[];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'breakwater-package-'));

    // Build stage: the build context's files, placed as the COPY instructions place them.
    const build = join(work, 'build');
    await mkdir(build);
    for (const { sources, destination } of contextCopies) {
      for (const source of sources) {
        // As Docker does: a source copied into a folder keeps its own name there.
        const target = destination.endsWith('/') ? join(build, destination, basename(source)) : join(build, destination);
        await cp(join(root, source), target, { recursive: true, filter: (path) => !dockerignore.ignores(relative(root, path) || '.') });
      }
    }
    // The repository's own install stands in for the build stage's `npm ci`.
    await symlink(join(root, 'node_modules'), join(build, 'node_modules'));
    await run('npm', ['run', 'build'], { cwd: build });
    const { stdout: packOutput } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: build });
    const [packResult] = JSON.parse(packOutput) as [{ filename: string; files: { path: string }[] }];
    tarball = join(work, packResult.filename);
    packed = packResult.files.map((file) => file.path);

    // Production-dependencies stage: the packed files in an empty folder, the locked
    // production dependencies installed beside them, no install scripts.
    app = join(work, 'app');
    await mkdir(app);
    await run('tar', ['-xzf', tarball, '--strip-components=1', '-C', app]);
    await cp(join(build, 'package-lock.json'), join(app, 'package-lock.json'));
    await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app });
    await rm(join(app, 'package-lock.json'));
  }, 240_000);

  afterAll(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('packs the compiled CLI and the example configs, and no TypeScript sources or tests', () => {
    expect(packed).toEqual(
      expect.arrayContaining(['package.json', 'bin/breakwater.js', 'dist/cli/main.js', 'config/breakwater.yaml', 'config/schema.json']),
    );
    // The admin page's static files, beside the compiled admin server that serves them.
    expect(packed).toEqual(expect.arrayContaining(['dist/cli/page/index.html', 'dist/cli/page/app.js', 'dist/cli/page/style.css']));
    expect(packed.filter((path) => path.endsWith('.ts') || /^(src|test|scripts|helm|deploy)\//.test(path))).toEqual([]);
  });

  it('installs the locked production dependencies only, and no second Node.js', async () => {
    const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const present = async (path: string) => stat(join(app, path)).then(() => true, () => false);
    const locked = Object.entries(lock.packages).filter(([path]) => path !== '');
    const devOnly = locked.filter(([, entry]) => entry.dev === true).map(([path]) => path);
    const production = locked.filter(([, entry]) => entry.dev !== true).map(([path]) => path);
    expect(devOnly).toEqual(expect.arrayContaining(['node_modules/typescript', 'node_modules/vitest', 'node_modules/eslint']));
    for (const path of production) expect(await present(path), path).toBe(true);
    for (const path of devOnly) expect(await present(path), path).toBe(false);
    // The `node` package's install script would have fetched a Node.js binary; the image's node runs Breakwater.
    expect(await present('node_modules/node/bin/node')).toBe(false);
  });

  it('prints its version and validates the example configs from the installed folder', async () => {
    const breakwater = join(app, 'bin/breakwater.js');
    const version = await run(process.execPath, [breakwater, 'version'], { cwd: app });
    expect(version.stdout.trim()).toBe(packageJson.version);
    const examples = (await readdir(join(app, 'config/examples'))).map((file) => join('config/examples', file));
    const validated = await run(process.execPath, [breakwater, 'validate', 'config/breakwater.yaml', ...examples], { cwd: app });
    expect(validated.stdout.trim().split('\n')).toEqual(['config/breakwater.yaml', ...examples].map((file) => `${file}: ok`));
  });

  describe('running', () => {
    let upstream: UpstreamServer;
    beforeAll(async () => {
      upstream = await startUpstream((_req, res) => res.end('hello from the upstream'));
    });
    afterAll(async () => upstream.close());

    /** Starts the installed package as the image runs it, on `yaml`, with `nodeOptions` added. */
    async function startInstalled(yaml: string, nodeOptions: string[] = []) {
      const configPath = join(work, 'breakwater.yaml');
      await writeFile(configPath, yaml);
      // As the image runs it: from its folder, with its Node flags and environment, the config
      // named by BREAKWATER_CONFIG.
      const child = spawn(process.execPath, [...nodeFlags, ...nodeOptions, join(app, 'bin/breakwater.js'), 'run'], {
        cwd: app,
        env: { ...process.env, ...nodeEnvironment, BREAKWATER_CONFIG: configPath, NODE_ENV: 'production' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      try {
        const started = await new Promise<{ listeners: Record<string, number>; telemetry: number; admin: number }>((resolve, reject) => {
          createInterface({ input: child.stdout }).on('line', (line) => {
            if (!line.startsWith('{')) return;
            const parsed = JSON.parse(line) as { msg?: string; listeners: Record<string, number>; telemetry: number; admin: number };
            if (parsed.msg === 'breakwater started') resolve(parsed);
          });
          void exited.then((code) => reject(new Error(`breakwater exited with ${code}:\n${stderr}`)));
        });
        return { child, started, exited };
      } catch (error) {
        child.kill('SIGKILL');
        throw error;
      }
    }

    it('proxies a request, writes nothing to its folder, and drains on SIGTERM', async () => {
      const before = await snapshot(app);
      const { child, started, exited } = await startInstalled(
        `listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  app: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: app, match: {host: app}, upstream: app, timeout: 5s}
`,
      );
      try {
        const response = await request(`http://127.0.0.1:${started.listeners.outbound}/hello`, { headers: { host: 'app' } });
        expect(response.statusCode).toBe(200);
        expect(response.headers['x-breakwater-attempts']).toBe('1');
        expect(await response.body.text()).toBe('hello from the upstream');
        const ready = await request(`http://127.0.0.1:${started.telemetry}/readyz`);
        expect(ready.statusCode).toBe(200);
        await ready.body.dump();
        const page = await request(`http://127.0.0.1:${started.admin}/`);
        expect(page.statusCode).toBe(200);
        expect(await page.body.text()).toContain('<title>Breakwater admin</title>');
        const script = await request(`http://127.0.0.1:${started.admin}/page/app.js`);
        expect(script.statusCode).toBe(200);
        await script.body.dump();

        child.kill('SIGTERM');
        expect(await exited).toBe(0);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      expect(await snapshot(app)).toEqual(before);
    });

    it('loads HTTP/2 and TLS only once an HTTP/2 connection asks for them', async () => {
      const h2Upstream = createH2Server().on('stream', (stream) => {
        stream.respond({ ':status': 200 });
        stream.end('hello over h2c');
      });
      await new Promise<void>((resolve) => h2Upstream.listen(0, '127.0.0.1', resolve));
      const h2Origin = `http://127.0.0.1:${(h2Upstream.address() as AddressInfo).port}`;
      // Writes the built-in modules Node loaded for Breakwater when it exits.
      const hookPath = join(work, 'builtins-hook.mjs');
      const listPath = join(work, 'builtins.json');
      await writeFile(hookPath, `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(listPath)}, JSON.stringify(process.moduleLoadList)));\n`);
      const yaml = `listeners: [{name: outbound, address: 127.0.0.1:0}]
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
upstreams:
  app: {endpoints: ["${upstream.origin}"]}
  grpcish: {endpoints: ["${h2Origin}"], protocol: h2c}
routes:
  - {name: app, match: {host: app}, upstream: app}
  - {name: h2, match: {host: h2}, upstream: grpcish}
`;
      /** Runs the package, makes `calls` against its listener, and returns what Node loaded. */
      const builtinsAfter = async (calls: (port: number) => Promise<void>): Promise<string[]> => {
        const { child, started, exited } = await startInstalled(yaml, ['--import', hookPath]);
        try {
          await calls(started.listeners.outbound!);
          child.kill('SIGTERM');
          expect(await exited).toBe(0);
        } finally {
          if (child.exitCode === null) child.kill('SIGKILL');
        }
        return JSON.parse(await readFile(listPath, 'utf8')) as string[];
      };
      try {
        const http1Only = await builtinsAfter(async (port) => {
          const response = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'app' } });
          expect(await response.body.text()).toBe('hello from the upstream');
        });
        expect(http1Only).not.toContain('NativeModule http2');
        expect(http1Only).not.toContain('NativeModule tls');

        const withH2 = await builtinsAfter(async (port) => {
          const session = connectH2(`http://127.0.0.1:${port}`);
          try {
            const stream = session.request({ ':path': '/', ':authority': 'h2' });
            const status = await new Promise<number>((resolve) => stream.once('response', (headers) => resolve(Number(headers[':status']))));
            let body = '';
            for await (const chunk of stream) body += String(chunk);
            expect([status, body]).toEqual([200, 'hello over h2c']);
          } finally {
            session.close();
          }
        });
        expect(withH2).toContain('NativeModule http2');
      } finally {
        h2Upstream.close();
      }
    });
  });
});

/** Every file under a folder with its size and modification time. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files: Record<string, string> = {};
  for (const entry of entries) {
    const path = join(entry.parentPath, entry.name);
    const info = await stat(path).catch(() => undefined);
    files[relative(dir, path)] = info === undefined ? 'dangling' : `${info.size} ${info.mtimeMs}`;
  }
  return files;
}
