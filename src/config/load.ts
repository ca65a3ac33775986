// Reads breakwater.yaml: YAML syntax, then the schema (Ajv), then the rules a schema cannot
// express, then defaults. Every mistake comes back as a problem with the file, line, column
// and path of the key or value to fix, so `breakwater validate` and reloads can show them.

import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { normalizeConfig } from './normalize.ts';
import type { Environment } from './normalize.ts';
import { formatPath, YamlLocator } from './positions.ts';
import type { PathSegment } from './positions.ts';
import type { Config } from './types.ts';
import { validateSchema } from './validate.ts';

export { redactConfig } from './redact.ts';

export interface ConfigProblem {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
  /** Where in the config, e.g. `routes[0].retry.perTryTimeout`; empty for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

export type ConfigResult = { ok: true; config: Config } | { ok: false; problems: ConfigProblem[] };

/** `FILE:LINE:COL field.path: message`, the form `breakwater validate` prints. */
export function formatProblem(problem: ConfigProblem): string {
  const where = `${problem.file}:${problem.line}:${problem.col}`;
  return problem.path === '' ? `${where}: ${problem.message}` : `${where} ${problem.path}: ${problem.message}`;
}

export interface ParseOptions {
  /** Where `${VAR}` references in store values are looked up. Default: `process.env`. */
  readonly env?: Environment;
}

/** Parses and validates the text of a config file; `fileName` is only used in problems. */
export function parseConfig(text: string, fileName: string, options: ParseOptions = {}): ConfigResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const locator = new YamlLocator(doc, lines);
  const problems: ConfigProblem[] = [];
  const at = (path: readonly PathSegment[], message: string, part: 'key' | 'value' = 'value'): void => {
    problems.push({ file: fileName, ...locator.locate(path, part), path: formatPath(path), message });
  };

  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      problems.push({ file: fileName, ...locator.at(error.pos[0]), path: '', message: `YAML syntax: ${error.message}` });
    }
    return { ok: false, problems };
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    problems.push({ file: fileName, line: 1, col: 1, path: '', message: `YAML: ${(error as Error).message}` });
    return { ok: false, problems };
  }
  // An empty file is far more likely a half-written or mis-mounted file than a wish for a
  // proxy with no routes; refusing it keeps the running config on reload.
  if (data === null || data === undefined) {
    problems.push({ file: fileName, line: 1, col: 1, path: '', message: 'the file is empty; expected a mapping with listeners, upstreams and routes' });
    return { ok: false, problems };
  }

  const checked = validateSchema(data);
  if (!checked.ok) {
    for (const issue of checked.issues) at(issue.path, issue.message, issue.part);
    return { ok: false, problems: sortProblems(problems) };
  }

  const config = normalizeConfig(checked.file, at, options.env);
  if (problems.length > 0) return { ok: false, problems: sortProblems(problems) };
  return { ok: true, config: deepFreeze(config) };
}

/** Reads and parses a config file; a file that cannot be read is a problem too. */
export async function loadConfigFile(path: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return { ok: false, problems: [{ file: path, line: 1, col: 1, path: '', message: `cannot read the file (${reason})` }] };
  }
  return parseConfig(text, path);
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.sort((a, b) => a.line - b.line || a.col - b.col);
}

function deepFreeze<T>(value: T): T {
  if (value instanceof Map) {
    for (const inner of value.values()) deepFreeze(inner);
  } else if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return Object.freeze(value);
}
