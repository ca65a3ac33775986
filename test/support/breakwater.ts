import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Breakwater, type BreakwaterOptions } from '../../src/app.ts';
import { formatProblem, parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { logSink, type LogSink } from './log-sink.ts';

/** Ports 0 everywhere, so tests never collide. */
export const ephemeralAddresses = `
listeners:
  - {name: outbound, address: 127.0.0.1:0}
  - {name: inbound, address: 127.0.0.1:0}
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
`;

export function configFromYaml(yaml: string, file = 'test.yaml'): Config {
  const parsed = parseConfig(yaml, file);
  if (!parsed.ok) {
    throw new Error(parsed.problems.map(formatProblem).join('\n'));
  }
  return parsed.config;
}

export interface RunningBreakwater {
  readonly breakwater: Breakwater;
  readonly log: LogSink;
  /** `http://127.0.0.1:PORT` of a listener. */
  url(listener?: string): string;
  readonly telemetryUrl: string;
  readonly adminUrl: string;
  readonly configPath: string;
  stop(): Promise<void>;
}

/**
 * Starts Breakwater in this process on `yaml` (written to a temp file so reloads work),
 * with its logs captured in memory.
 */
export async function startBreakwater(yaml: string, options: Partial<BreakwaterOptions> = {}): Promise<RunningBreakwater> {
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-test-'));
  const configPath = join(dir, 'breakwater.yaml');
  await writeFile(configPath, yaml);
  const log = logSink();
  const breakwater = new Breakwater({ config: configFromYaml(yaml, configPath), configPath, logger: log.logger, accessLogger: log.accessLogger, ...options });
  await breakwater.start();
  const ports = breakwater.ports;
  return {
    breakwater,
    log,
    url: (listener = 'outbound') => `http://127.0.0.1:${ports.listeners[listener]!}`,
    telemetryUrl: `http://127.0.0.1:${ports.telemetry}`,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
    configPath,
    stop: async () => {
      await breakwater.drain();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
