// The `breakwater` command: run | validate | explain | version | dlq.

import { parseArgs } from 'node:util';
import { allProblems, formatProblem, loadConfigFile } from '../config/load.ts';
import type { ConfigProblem } from '../config/load.ts';
import { lintConfig } from '../lint/warnings.ts';
import { breakwaterVersion } from '../runtime/version.ts';
import { explainCommand } from './explain-command.ts';
import { DLQ_USAGE } from './dlq.ts';
import type { CliIo } from './io.ts';

const DEFAULT_CONFIG_PATH = 'config/breakwater.yaml';

const USAGE = `Usage:
  breakwater run [--config FILE] [--log-format json|pretty]
                                   start the proxy (FILE: $BREAKWATER_CONFIG, else ${DEFAULT_CONFIG_PATH});
                                   logs are JSON lines unless pretty is asked for
  breakwater validate FILE...      check config files; one line per problem, exit 1 if any
                                   error (warnings alone exit 0)
  breakwater explain [--config FILE] [--listener NAME] METHOD URL [-H "Name: value"]... [--json]
                                   the route and policy a request would get, each value's line
                                   in FILE, and its deadline; URL is http://host/path, or /path
                                   with -H "Host: NAME"; listener: outbound unless given;
                                   exit 0 on a match, 1 on none, 2 on a bad config
  breakwater version               print the version
${DLQ_USAGE}`;

export type { CliIo } from './io.ts';

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
};

/**
 * Exit codes: 0 ok, 1 invalid files (validate), a failed start or no matching route (explain),
 * 2 usage error or invalid config.
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await run(rest, io);
      case 'validate':
        return await validate(rest, io);
      case 'explain':
        return await explainCommand(rest, io, DEFAULT_CONFIG_PATH);
      case 'dlq':
        return await (await import('./dlq.ts')).dlq(rest, io);
      case 'version':
        parseArgs({ args: [...rest], options: {}, allowPositionals: false });
        io.stdout(`${breakwaterVersion}\n`);
        return 0;
      case 'help':
      case '--help':
      case '-h':
        io.stdout(USAGE);
        return 0;
      case undefined:
        io.stderr(USAGE);
        return 2;
      default:
        io.stderr(`breakwater: unknown command "${command}"\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (isUsageError(error)) {
      io.stderr(`breakwater: ${error.message}\n${USAGE}`);
      return 2;
    }
    throw error;
  }
}

async function run(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: { config: { type: 'string', short: 'c' }, 'log-format': { type: 'string' } },
    allowPositionals: false,
  });
  const configPath = values.config ?? io.env.BREAKWATER_CONFIG ?? DEFAULT_CONFIG_PATH;
  const logFormat = values['log-format'] ?? 'json';
  if (logFormat !== 'json' && logFormat !== 'pretty') throw usageError(`--log-format must be json or pretty, not "${logFormat}"`);
  const result = await loadConfigFile(configPath, { lint: lintConfig });
  if (!result.ok) {
    writeProblems(io, allProblems(result));
    io.stderr(`breakwater: ${configPath} is not a valid config; not starting\n`);
    return 2;
  }
  // Loaded on demand so that `validate` and `version` do not pull in the whole proxy.
  const [{ serve }, { logConfigWarnings }] = await Promise.all([import('./serve.ts'), import('../app.ts')]);
  try {
    const breakwater = await serve({ config: result.config, configPath, logFormat });
    // Warnings do not stop a start; they go to the log, as a reload's do.
    logConfigWarnings(breakwater.logger, configPath, result.warnings);
  } catch (error) {
    io.stderr(`breakwater: could not start: ${(error as Error).message}\n`);
    return 1;
  }
  // The listeners keep the process alive; SIGTERM/SIGINT drain and exit.
  return 0;
}

async function validate(args: readonly string[], io: CliIo): Promise<number> {
  const { positionals } = parseArgs({ args: [...args], options: {}, allowPositionals: true });
  if (positionals.length === 0) throw usageError('validate needs at least one FILE');
  let valid = true;
  for (const file of positionals) {
    const result = await loadConfigFile(file, { lint: lintConfig });
    writeProblems(io, allProblems(result));
    if (!result.ok) valid = false;
    else if (result.warnings.length === 0) io.stdout(`${file}: ok\n`);
    else io.stdout(`${file}: ok (${result.warnings.length} warning${result.warnings.length === 1 ? '' : 's'})\n`);
  }
  return valid ? 0 : 1;
}

function writeProblems(io: CliIo, problems: readonly ConfigProblem[]): void {
  for (const problem of problems) io.stderr(`${formatProblem(problem)}\n`);
}

function usageError(message: string): Error {
  return Object.assign(new TypeError(message), { code: 'ERR_PARSE_ARGS_USAGE' });
}

// parseArgs reports unknown options and stray arguments with ERR_PARSE_ARGS_* codes.
function isUsageError(error: unknown): error is Error {
  return error instanceof Error && String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS_');
}

if (import.meta.main) {
  process.exitCode = await runCli(process.argv.slice(2));
}
