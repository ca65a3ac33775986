// Reads breakwater.yaml: YAML syntax, then the schema (Ajv), then the rules a schema cannot
// express, then defaults, then the lint the caller gives (the warnings). Every mistake comes
// back as a problem with the file, line, column and path of the key or value to fix, so
// `breakwater validate` and reloads can show them. After a shape mistake the later steps still check the well-formed rest of the
// file, so that one run shows every problem rather than one step's worth at a time.

import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { fileNames, normalizeConfig } from './normalize.ts';
import type { Environment } from './normalize.ts';
import { formatPath, YamlLocator } from './positions.ts';
import type { ItemName, PathSegment } from './positions.ts';
import type { Config, RouteConfig } from './types.ts';
import { checkSchema } from './validate.ts';

export { redactConfig } from './redact.ts';

export interface ConfigProblem {
  /** An error makes the file invalid; a warning does not. */
  readonly severity: 'error' | 'warning';
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
  /** Where in the config, e.g. `routes[0](charge).retry.perTryTimeout`; empty for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/**
 * `problems` are the errors; `warnings` never make a file invalid. Both are sorted by their
 * position in the file.
 */
export type ConfigResult =
  | { ok: true; config: Config; warnings: ConfigProblem[] }
  | { ok: false; problems: ConfigProblem[]; warnings: ConfigProblem[] };

/**
 * `FILE:LINE:COL field.path: message`, the form `breakwater validate` prints; a warning's
 * message starts with `warning: `.
 */
export function formatProblem(problem: ConfigProblem): string {
  const where = `${problem.file}:${problem.line}:${problem.col}`;
  const message = problem.severity === 'warning' ? `warning: ${problem.message}` : problem.message;
  return problem.path === '' ? `${where}: ${message}` : `${where} ${problem.path}: ${message}`;
}

/** Errors and warnings together, in file order: what `breakwater validate` prints. */
export function allProblems(result: ConfigResult): ConfigProblem[] {
  return sortProblems([...(result.ok ? [] : result.problems), ...result.warnings]);
}

export type ReportWarning = (path: readonly PathSegment[], message: string, part?: 'key' | 'value') => void;

export interface RouteInFile {
  readonly route: RouteConfig;
  /** `['routes', INDEX]`, the index in the file. */
  readonly path: readonly PathSegment[];
  /** The keys the file gives the route and its retry (the others take their defaults). */
  readonly given: { readonly timeout: boolean; readonly maxAttempts: boolean };
}

/**
 * Looks for mistakes a valid config can still hold, and reports each as a warning (never an
 * error). `clean(path)` says whether that part of the file is free of errors: a lint leaves out
 * a part with an error, since fixing the error may change the answer. The lint Breakwater runs
 * is src/lint/'s: it judges routes with the router's and the retry policy's own rules, which
 * sit above this folder, so the callers that show warnings pass it in.
 */
export type ConfigLint = (routes: readonly RouteInFile[], clean: (path: readonly PathSegment[]) => boolean, warn: ReportWarning) => void;

export interface ParseOptions {
  /** Where `${VAR}` references in store values are looked up. Default: `process.env`. */
  readonly env?: Environment;
  /** The warnings' checks; without it the result has no warnings. */
  readonly lint?: ConfigLint;
}

/** Parses and validates the text of a config file; `fileName` is only used in problems. */
export function parseConfig(text: string, fileName: string, options: ParseOptions = {}): ConfigResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const locator = new YamlLocator(doc, lines);
  const problems: ConfigProblem[] = [];
  // A mistake in the file as a whole, before any of its content can be checked.
  const fail = (message: string): ConfigResult => ({
    ok: false,
    problems: [{ severity: 'error', file: fileName, line: 1, col: 1, path: '', message }],
    warnings: [],
  });

  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      problems.push({ severity: 'error', file: fileName, ...locator.at(error.pos[0]), path: '', message: `YAML syntax: ${error.message}` });
    }
    return { ok: false, problems, warnings: [] };
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return fail(`YAML: ${(error as Error).message}`);
  }
  // An empty file is far more likely a half-written or mis-mounted file than a wish for a
  // proxy with no routes; refusing it keeps the running config on reload.
  if (data === null || data === undefined) {
    return fail('the file is empty; expected a mapping with listeners, upstreams and routes');
  }

  const names = fileNames(data);
  // Routes and listeners are shown by name as well as index: `routes[2](charge).timeout`.
  const nameOf: ItemName = (list, index) =>
    list.length !== 1 ? undefined : list[0] === 'routes' ? names.routes[index] : list[0] === 'listeners' ? names.listeners?.[index] : undefined;
  // Every path with an error (schema, rules) or a cut: the warnings leave those parts out.
  const troubled: (readonly PathSegment[])[] = [];
  const report = (severity: ConfigProblem['severity']) => (path: readonly PathSegment[], message: string, part: 'key' | 'value' = 'value') => {
    if (severity === 'error') troubled.push(path);
    problems.push({ severity, file: fileName, ...locator.locate(path, part), path: formatPath(path, nameOf), message });
  };
  const error = report('error');

  const checked = checkSchema(data);
  for (const issue of checked.issues) error(issue.path, issue.message, issue.part);
  troubled.push(...checked.pruned);
  if (checked.file === undefined) return { ok: false, problems: sortProblems(problems), warnings: [] };

  const file = checked.file;
  const broken = (path: readonly PathSegment[]): boolean => checked.pruned.some((cut) => startsWith(path, cut));
  const config = normalizeConfig(file, error, options.env, { names, fileIndex: checked.fileIndex, broken });
  if (options.lint !== undefined) {
    const clean = (path: readonly PathSegment[]): boolean => !troubled.some((other) => startsWith(path, other) || startsWith(other, path));
    const routes = config.routes.map((route, index) => ({
      route,
      path: ['routes', checked.fileIndex(file.routes ?? [], index)],
      given: { timeout: file.routes?.[index]?.timeout !== undefined, maxAttempts: file.routes?.[index]?.retry?.maxAttempts !== undefined },
    }));
    options.lint(routes, clean, report('warning'));
  }

  const errors = sortProblems(problems.filter((problem) => problem.severity === 'error'));
  const warnings = sortProblems(problems.filter((problem) => problem.severity === 'warning'));
  if (errors.length > 0) return { ok: false, problems: errors, warnings };
  return { ok: true, config: deepFreeze(config), warnings };
}

/** Whether `path` is `prefix` or lies within it. */
function startsWith(path: readonly PathSegment[], prefix: readonly PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((segment, index) => segment === path[index]);
}

/** Reads and parses a config file; a file that cannot be read is a problem too. */
export async function loadConfigFile(path: string, options: ParseOptions = {}): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return {
      ok: false,
      problems: [{ severity: 'error', file: path, line: 1, col: 1, path: '', message: `cannot read the file (${reason})` }],
      warnings: [],
    };
  }
  return parseConfig(text, path, options);
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
