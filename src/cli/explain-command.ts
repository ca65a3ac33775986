// The `breakwater explain` command: reads the file and the request from the command line,
// and prints what src/cli/explain.ts finds, as aligned text for a person or JSON for a script.

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { formatProblem, parseConfig } from '../config/load.ts';
import { DEFAULTS } from '../config/defaults.ts';
import { locatorFor } from '../config/positions.ts';
import { formatDuration } from '../config/units.ts';
import { explain, type DeadlineExplanation, type Explanation, type MatchCheck, type Matched, type Missed } from './explain.ts';

export interface ExplainIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Exit codes: 0 a route matches, 1 none does, 2 a bad config or command line. */
export async function explainCommand(args: readonly string[], io: ExplainIo, defaultConfigPath: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      config: { type: 'string', short: 'c' },
      listener: { type: 'string', short: 'l' },
      header: { type: 'string', short: 'H', multiple: true },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (positionals.length !== 2) throw usageError('explain needs METHOD and URL, e.g. explain GET http://payments/charge');
  const [method, url] = positionals as [string, string];
  const headers = parseHeaders(values.header ?? []);
  const configPath = values.config ?? io.env.BREAKWATER_CONFIG ?? defaultConfigPath;

  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (error) {
    io.stderr(`${configPath}:1:1: cannot read the file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})\n`);
    return 2;
  }
  const parsed = parseConfig(text, configPath);
  if (!parsed.ok) {
    for (const problem of parsed.problems) io.stderr(`${formatProblem(problem)}\n`);
    io.stderr(`breakwater: ${configPath} is not a valid config; nothing to explain\n`);
    return 2;
  }
  const config = parsed.config;
  const listener = values.listener ?? DEFAULTS.routeListener;
  if (!config.listeners.some((known) => known.name === listener)) {
    const names = config.listeners.map((known) => known.name).join(', ');
    io.stderr(`breakwater: ${configPath} has no listener "${listener}"; give --listener with one of: ${names}\n`);
    return 2;
  }

  const explanation = explain(config, locatorFor(text), { method, url, headers, listener });
  if (values.json === true) io.stdout(`${JSON.stringify({ config: configPath, ...explanation }, null, 2)}\n`);
  else io.stdout(formatExplanation(explanation, configPath));
  return explanation.matched ? 0 : 1;
}

/** `-H "Name: value"`, as curl takes it; a repeated name joins its values with ", " as Node does. */
function parseHeaders(given: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const header of given) {
    const colon = header.indexOf(':');
    const name = header.slice(0, colon).trim().toLowerCase();
    if (colon <= 0 || name === '') throw usageError(`-H takes "Name: value", got "${header}"`);
    const value = header.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return headers;
}

function usageError(message: string): Error {
  return Object.assign(new TypeError(message), { code: 'ERR_PARSE_ARGS_USAGE' });
}

/** Rows of cells, every column but the last padded to its widest cell. */
function table(rows: readonly (readonly string[])[], indent = ''): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows
    .map((row) => `${indent}${row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index]!))).join('  ')}`.trimEnd())
    .join('\n');
}

function from(line: number | null): string {
  return line === null ? 'default' : `line ${line}`;
}

function ms(value: number): string {
  return formatDuration(value);
}

export function formatExplanation(explanation: Explanation, configPath: string): string {
  const { request } = explanation;
  const heading = `${request.method} ${request.url}${request.url.startsWith('/') ? ` (Host: ${request.host === '' ? 'none' : request.host})` : ''} on listener ${explanation.listener}`;
  return `${heading}\n${explanation.matched ? formatMatched(explanation, configPath) : formatMissed(explanation, configPath)}`;
}

function formatMatched(explanation: Matched, configPath: string): string {
  const { route, deadline } = explanation;
  const upstreamSection = explanation.policy[1];
  const endpoints = upstreamSection?.values.find((value) => value.name === 'endpoints')?.text ?? '';
  const summary = table([
    ['route', `${route.name}${route.line === null ? '' : ` (${configPath}:${route.line})`}`],
    ['upstream', `${route.upstream}: ${endpoints}`],
    ['deadline', deadlineText(deadline)],
    ['per try', perTryText(deadline)],
  ]);

  const conditions =
    explanation.match.length === 0
      ? '  (none: the route takes every request on the listener)'
      : table(
          [['condition', 'route wants', 'request has', 'from'], ...explanation.match.map((check) => [check.field, check.wanted, check.got, from(check.line)])],
          '  ',
        );

  // One table for every section, so the columns line up down the whole listing; the value
  // comes last, as some (a fallback's static response) are long.
  const rows: string[][] = [['', 'from', 'value']];
  for (const section of explanation.policy) {
    rows.push([section.title]);
    for (const value of section.values) rows.push([`  ${value.name}`, from(value.line), value.text]);
  }
  return `${summary}\n\nmatched on\n${conditions}\n\npolicy, every default filled in (from: the line of ${configPath} that sets the value)\n${table(rows, '  ')}\n`;
}

function deadlineText(deadline: DeadlineExplanation): string {
  const caller = deadline.caller;
  const said = caller === null ? '' : `${caller.header}: ${caller.value}`;
  const capped = caller?.cappedMs === null || caller === null ? '' : `, capped at deadline.maxInbound ${ms(caller.cappedMs)}`;
  const ignored = deadline.ignored.map((header) => `; ${header.header}: ${header.value} ignored (not a valid budget)`).join('');
  if (deadline.kind === 'spent') {
    return `spent: the caller's ${said}; the proxy answers 504 deadline_exceeded at once and calls no upstream${ignored}`;
  }
  const lifetime = ms(deadline.ms!);
  if (deadline.source === 'caller') return `${lifetime}, the caller's budget ${said}${capped} (the route timeout is ${ms(deadline.routeTimeoutMs)})${ignored}`;
  const budget = caller === null ? 'no caller budget header' : `the caller's ${said}${capped}${capped === '' ? '' : ','} is not shorter`;
  return `${lifetime}, the route timeout (${budget})${ignored}`;
}

function perTryText(deadline: DeadlineExplanation): string {
  if (deadline.kind === 'spent' || deadline.attemptMs === null) return 'none: no attempt is made';
  const told = deadline.announced === null ? '' : `; the upstream is told ${deadline.announced.header}: ${deadline.announced.value}`;
  if (deadline.perTryTimeoutMs === null) return `${ms(deadline.attemptMs)}, the whole deadline (no retry.perTryTimeout)${told}`;
  const adaptive = deadline.adaptive;
  if (adaptive !== null) {
    const rule = `${adaptive.multiplier} × p${adaptive.percentile} of the last ${ms(adaptive.windowMs)}'s good attempts, within ${ms(adaptive.minMs)}..${ms(adaptive.maxMs)}`;
    return `${ms(deadline.attemptMs)} at most: ${rule}, ${ms(adaptive.maxMs)} until ${adaptive.minSamples} of them (GET /routes has the value in force)${told} at most`;
  }
  if (deadline.attemptMs < deadline.perTryTimeoutMs) {
    return `${ms(deadline.attemptMs)}, all the deadline leaves (retry.perTryTimeout is ${ms(deadline.perTryTimeoutMs)})${told}`;
  }
  return `${ms(deadline.attemptMs)}, retry.perTryTimeout${told}`;
}

function formatMissed(explanation: Missed, configPath: string): string {
  const lines: string[] = [];
  if (explanation.problem !== null) lines.push(`no route: ${explanation.problem}`);
  else lines.push('no route matches: the proxy answers 404 no_route and dials no upstream');
  const closest = explanation.closest;
  if (closest !== null) {
    const at = closest.line === null ? '' : ` (${configPath}:${closest.line})`;
    const failed = closest.failed.length === 0 ? '' : `, which fails on ${closest.failed.join(' and ')}`;
    lines.push('', `closest route: ${closest.name}${at}${failed}`);
    lines.push(
      table(
        [
          ['condition', 'route wants', 'request has', 'from', ''],
          ...closest.checks.map((check: MatchCheck) => [check.field, check.wanted, check.got, from(check.line), check.ok ? 'ok' : 'FAILS']),
        ],
        '  ',
      ),
    );
  }
  for (const other of explanation.elsewhere) {
    lines.push('', `on listener ${other.listener}, route ${other.route} would take it (--listener ${other.listener})`);
  }
  return `${lines.join('\n')}\n`;
}
