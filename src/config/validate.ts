// Schema validation of a parsed config file with Ajv, and the translation of Ajv's errors into
// one plain message per mistake, addressed by a path into the file.

import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { configJsonSchema } from './schema.ts';
import type { ConfigFile } from './schema.ts';
import type { PathSegment } from './positions.ts';
import { didYouMean } from './suggest.ts';

export interface SchemaIssue {
  readonly path: readonly PathSegment[];
  /** Whether the mistake is the key itself (an unknown key) or its value. */
  readonly part: 'key' | 'value';
  readonly message: string;
}

interface SchemaNode {
  readonly properties?: Readonly<Record<string, unknown>>;
  readonly errorMessage?: string;
}

let compiled: ValidateFunction<ConfigFile> | undefined;

function validator(): ValidateFunction<ConfigFile> {
  if (!compiled) {
    // verbose: errors carry the failing schema node, for its errorMessage and allowed keys.
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
    // Editors read errorMessage; for Ajv it is an annotation.
    ajv.addKeyword('errorMessage');
    compiled = ajv.compile<ConfigFile>(configJsonSchema());
  }
  return compiled;
}

export function validateSchema(data: unknown): { ok: true; file: ConfigFile } | { ok: false; issues: SchemaIssue[] } {
  const validate = validator();
  if (validate(data)) return { ok: true, file: data };
  return { ok: false, issues: translate(validate.errors ?? [], data) };
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping (key: value)',
  null: 'empty',
};

function translate(errors: readonly ErrorObject[], data: unknown): SchemaIssue[] {
  // A union with its own message reports once, instead of once per branch; the same goes for
  // a propertyNames failure and the pattern check inside it.
  const summarized = errors
    .filter((error) => (error.keyword === 'anyOf' && messageOf(error) !== undefined) || error.keyword === 'propertyNames')
    .map((error) => `${error.schemaPath}/`);
  const issues: SchemaIssue[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    if (summarized.some((prefix) => error.schemaPath.startsWith(prefix))) continue;
    const issue = describe(error, pathOf(error.instancePath, data));
    const key = `${issue.path.join('\0')}\0${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

function describe(error: ErrorObject, path: PathSegment[]): SchemaIssue {
  const params = error.params as Record<string, unknown>;
  const custom = messageOf(error);
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const allowed = Object.keys((error.parentSchema as SchemaNode | undefined)?.properties ?? {});
      return { path: [...path, key], part: 'key', message: `unknown key "${key}"${didYouMean(key, allowed)}` };
    }
    case 'propertyNames': {
      const key = String(params.propertyName);
      const names = (error.parentSchema as { propertyNames?: SchemaNode } | undefined)?.propertyNames;
      return { path: [...path, key], part: 'key', message: `"${key}" ${names?.errorMessage ?? 'is not a valid key here'}` };
    }
    case 'required':
      return { path: [...path, String(params.missingProperty)], part: 'value', message: `missing required key "${String(params.missingProperty)}"` };
    case 'type':
      return { path, part: 'value', message: `must be ${TYPE_NAMES[String(params.type)] ?? String(params.type)}` };
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const hint = typeof error.data === 'string' ? didYouMean(error.data, allowed) : '';
      return { path, part: 'value', message: `must be one of: ${allowed.join(', ')}${hint}` };
    }
    case 'minimum':
    case 'exclusiveMinimum':
      return { path, part: 'value', message: custom ?? `must be at least ${String(params.limit)}` };
    case 'maximum':
    case 'exclusiveMaximum':
      return { path, part: 'value', message: custom ?? `must be at most ${String(params.limit)}` };
    case 'minItems':
      return { path, part: 'value', message: `must list at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}` };
    case 'minLength':
      return { path, part: 'value', message: 'must not be empty' };
    case 'uniqueItems': {
      const later = Math.max(Number(params.i), Number(params.j));
      const item: unknown = Array.isArray(error.data) ? error.data[later] : undefined;
      return { path: [...path, later], part: 'value', message: `${JSON.stringify(item)} is listed twice` };
    }
    case 'minProperties':
    case 'maxProperties': {
      const keys = Object.keys((error.parentSchema as SchemaNode | undefined)?.properties ?? {});
      return { path, part: 'value', message: `must have exactly one of: ${keys.join(', ')}` };
    }
    default:
      return { path, part: 'value', message: custom ?? error.message ?? 'is not valid' };
  }
}

function messageOf(error: ErrorObject): string | undefined {
  const message = (error.parentSchema as SchemaNode | undefined)?.errorMessage;
  return typeof message === 'string' ? message : undefined;
}

/** Ajv's JSON pointer → path segments, with list indexes as numbers (walking the data to know which). */
function pathOf(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const path: PathSegment[] = [];
  let node: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(node)) {
      const index = Number(token);
      path.push(index);
      node = node[index];
    } else {
      path.push(token);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[token] : undefined;
    }
  }
  return path;
}
