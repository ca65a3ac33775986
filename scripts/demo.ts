import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDemoUpstream } from './demo-upstream.ts';

// `npm start`: the demo service on 127.0.0.1:18080 and Breakwater on the shipped example
// config in front of it. Ctrl-C drains Breakwater and stops both.

const root = fileURLToPath(new URL('../', import.meta.url));
const stopUpstream = await startDemoUpstream(18080);
// The same young-generation size as the container image (see the Dockerfile).
const breakwater = spawn(process.execPath, ['--max-semi-space-size=4', 'src/cli/main.ts', 'run', '--config', 'config/breakwater.yaml', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => breakwater.kill(signal));
}
breakwater.on('exit', (code) => {
  void stopUpstream().then(() => process.exit(code ?? 0));
});
