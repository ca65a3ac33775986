// `breakwater run` as a process: starts Breakwater, then lets the process's signals drive it.

import { readFile } from 'node:fs/promises';
import { Breakwater } from '../app.ts';
import { configHash } from '../config/hash.ts';
import type { Config } from '../config/types.ts';

/**
 * Starts Breakwater for the command line: serves until SIGTERM or SIGINT drains it (exit 0),
 * and reloads on SIGHUP and on changes to the config file.
 */
export async function serve(options: { config: Config; configPath: string }): Promise<Breakwater> {
  const text = await readFile(options.configPath, 'utf8');
  const breakwater = new Breakwater({ config: options.config, configPath: options.configPath, configHash: configHash(text) });
  await breakwater.start();
  breakwater.watch();
  process.on('SIGHUP', () => void breakwater.reload());
  const stop = (): void => {
    void breakwater.drain().then(
      () => {
        breakwater.logger.flush();
        breakwater.accessLogger.flush();
        process.exit(0);
      },
      (error: unknown) => {
        breakwater.logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return breakwater;
}
