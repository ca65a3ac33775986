import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../src/config/load.ts';
import type { Address } from '../src/config/types.ts';
import { startDemoUpstream } from './demo-upstream.ts';
import { nodeEnvironment, nodeFlags } from './node-runtime.ts';

// `npm start`: the demo service on 127.0.0.1:18080 and Breakwater on the shipped example
// config in front of it. Ctrl-C, or SIGTERM/SIGINT sent to npm (whose script execs this file,
// so the signal lands here), drains Breakwater and stops both; nothing is left holding a port.

const root = fileURLToPath(new URL('../', import.meta.url));
const configPath = 'config/breakwater.yaml';
const demoAddress: Address = { host: '127.0.0.1', port: 18080 };

/** Whether a port can be bound now; another `npm start` or Breakwater may hold it. */
function isFree(address: Address): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
    probe.listen({ host: address.host, port: address.port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

// Every address this command would bind, checked before anything starts, so that a second
// `npm start` says what is wrong in one line instead of half-starting.
const wanted: { what: string; address: Address }[] = [{ what: 'demo service', address: demoAddress }];
const loaded = await loadConfigFile(`${root}${configPath}`);
if (loaded.ok) {
  const { listeners, telemetry, admin } = loaded.config;
  wanted.push(
    ...listeners.map((listener) => ({ what: `${listener.name} listener`, address: listener.address })),
    { what: 'telemetry', address: telemetry.address },
    { what: 'admin', address: admin.address },
  );
}
const busy = (await Promise.all(wanted.map(async (entry) => ((await isFree(entry.address)) ? [] : [entry])))).flat();
if (busy.length > 0) {
  const list = busy.map(({ what, address }) => `${address.port} (${what})`).join(', ');
  console.error(`npm start: port${busy.length > 1 ? 's' : ''} ${list} already in use: is another npm start or Breakwater running? Stop it first.`);
  process.exit(1);
}

const stopUpstream = await startDemoUpstream(demoAddress.port, demoAddress.host);
// As the container image runs it: the compiled code (npm start builds it first), with the
// image's Node flags and environment, so that what the demo shows is what a pod does.
const breakwater = spawn(process.execPath, [...nodeFlags, 'dist/cli/main.js', 'run', '--config', configPath, ...process.argv.slice(2)], {
  cwd: root,
  env: { ...process.env, ...nodeEnvironment },
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => breakwater.kill(signal));
}
breakwater.on('exit', (code) => {
  void stopUpstream().then(() => process.exit(code ?? 0));
});
