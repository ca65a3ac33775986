// `breakwater run` as a process: starts Breakwater, then lets the process's signals drive it.

import { readFile } from 'node:fs/promises';
import { Breakwater } from '../app.ts';
import { configHash } from '../config/hash.ts';
import type { Config } from '../config/types.ts';
import { createAccessLogger, createLogger, type Logger } from '../telemetry/logger.ts';

/** How log lines are written: JSON lines for log collectors (the default), or pretty for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/** The loggers for `format`; undefined for Breakwater's own JSON loggers. */
async function loggersFor(format: LogFormat): Promise<{ logger: Logger; accessLogger: Logger } | undefined> {
  if (format === 'json') return undefined;
  // Loaded only when asked for: a sidecar in a cluster writes JSON.
  const { default: pretty } = await import('pino-pretty');
  const destination = pretty({ colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  return { logger: createLogger({ destination }), accessLogger: createAccessLogger({ destination }) };
}

/**
 * Starts Breakwater for the command line: serves until SIGTERM or SIGINT drains it (exit 0),
 * and reloads on SIGHUP and on changes to the config file.
 */
export async function serve(options: { config: Config; configPath: string; logFormat: LogFormat }): Promise<Breakwater> {
  const text = await readFile(options.configPath, 'utf8');
  const loggers = await loggersFor(options.logFormat);
  const breakwater = new Breakwater({ config: options.config, configPath: options.configPath, configHash: configHash(text), ...loggers });
  const started = breakwater.start();
  // Heard from the start: a signal that arrives while the listeners bind still drains, once
  // they are up, instead of killing the process unflushed.
  const stop = (): void => {
    void started
      .then(() => breakwater.drain())
      .then(
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
  try {
    await started;
  } catch (error) {
    // What did start (the telemetry and admin servers) would keep a failed process running.
    await breakwater.drain();
    throw error;
  }
  breakwater.watch();
  process.on('SIGHUP', () => void breakwater.reload());
  return breakwater;
}
