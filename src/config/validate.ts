// Schema validation of a parsed config file, and the translation of its errors into one plain
// message per mistake, addressed by a path into the file. The parts that fail are then cut
// away, so that the later checks can still run on the rest of the file and a user sees every
// problem in one run.
//
// The validator is Ajv's, compiled ahead of time from src/config/schema.ts by `npm run schema`:
// compiled at start-up, Ajv's compiler, TypeBox and the code they make would stay resident for
// the life of the process, in every pod.

import type { ErrorObject, ValidateFunction } from 'ajv';
import type { ConfigFile } from './schema.ts';
import { validate as generatedValidator } from './schema-validator.generated.ts';
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

// Compiled with allErrors and verbose: errors carry the failing schema node, for its
// errorMessage and allowed keys.
const validate = generatedValidator as unknown as ValidateFunction<ConfigFile>;

export interface SchemaCheck {
  /** Every mistake in the file's shape, to report. */
  readonly issues: readonly SchemaIssue[];
  /**
   * What was cut away, as paths in the file's own list indexes: each failing value, and any
   * object or list item left without a required key by that cut.
   */
  readonly pruned: readonly (readonly PathSegment[])[];
  /** The well-formed rest of the file; undefined when nothing usable is left (not a mapping). */
  readonly file: ConfigFile | undefined;
  /** The index in the file of item `index` of a list of `file`: cut items shift the rest. */
  readonly fileIndex: (list: readonly unknown[], index: number) => number;
}

/** Each cut makes progress; a file this broken is reported as it is, without later checks. */
const MAX_PRUNE_ROUNDS = 64;

/**
 * Validates the shape of `data` and cuts away what fails, until the rest is well-formed. A cut
 * removes the failing value (an optional key then takes its default, a list loses the item); a
 * value left without a required key is cut in turn, up to whole list items, map entries or
 * sections. Only the first round's mistakes are the user's: later rounds only follow the cuts.
 */
export function checkSchema(data: unknown): SchemaCheck {
  const working = copyData(data);
  // For each list in `working`, the file index of each of its items.
  const origins = new WeakMap<readonly unknown[], number[]>();
  const fileIndex = (list: readonly unknown[], index: number): number => origins.get(list)?.[index] ?? index;
  const pruned: PathSegment[][] = [];
  let issues: SchemaIssue[] | undefined;
  for (let round = 0; round < MAX_PRUNE_ROUNDS; round++) {
    if (validate(working)) return { issues: issues ?? [], pruned, file: working, fileIndex };
    const errors = validate.errors ?? [];
    issues ??= translate(errors, data);
    const cuts = errors.map((error) => locateCut(cutOf(error), working, origins));
    if (cuts.some((cut) => cut.parent === undefined)) break;
    if (!applyCuts(cuts, origins, pruned)) break;
  }
  return { issues: issues ?? [], pruned, file: undefined, fileIndex };
}

/** The part of the data to cut for an Ajv error, as segments of its working copy. */
function cutOf(error: ErrorObject): string[] {
  const params = error.params as Record<string, unknown>;
  const at = error.instancePath === '' ? [] : error.instancePath.slice(1).split('/').map(unescapePointer);
  switch (error.keyword) {
    case 'additionalProperties':
      return [...at, String(params.additionalProperty)];
    case 'propertyNames':
      return [...at, String(params.propertyName)];
    case 'uniqueItems':
      // The later of two equal items; the first stays and is checked further.
      return [...at, String(Math.max(Number(params.i), Number(params.j)))];
    default:
      // required: the object lacking the key; anything else: the failing value itself.
      return at;
  }
}

interface Cut {
  /** The object or list holding the value to cut; undefined for the whole document. */
  readonly parent: Record<string, unknown> | unknown[] | undefined;
  readonly key: string;
  /** In file indexes, for the record of what was cut. */
  readonly filePath: PathSegment[];
}

function locateCut(segments: readonly string[], working: unknown, origins: WeakMap<readonly unknown[], number[]>): Cut {
  let parent: Record<string, unknown> | unknown[] | undefined;
  let node: unknown = working;
  const filePath: PathSegment[] = [];
  for (const segment of segments) {
    if (Array.isArray(node)) {
      const index = Number(segment);
      filePath.push(origins.get(node)?.[index] ?? index);
      parent = node;
      node = node[index];
    } else if (node !== null && typeof node === 'object') {
      filePath.push(segment);
      parent = node as Record<string, unknown>;
      node = parent[segment];
    } else {
      break;
    }
  }
  return { parent, key: segments.at(-1) ?? '', filePath };
}

/** Applies one round of cuts; false when none of them changed anything. */
function applyCuts(cuts: readonly Cut[], origins: WeakMap<readonly unknown[], number[]>, pruned: PathSegment[][]): boolean {
  const seen = new Set<string>();
  const removals = new Map<unknown[], Set<number>>();
  let changed = false;
  for (const cut of cuts) {
    const id = cut.filePath.join('\0');
    if (seen.has(id)) continue;
    seen.add(id);
    const { parent, key } = cut;
    if (Array.isArray(parent)) {
      const index = Number(key);
      if (index >= parent.length) continue;
      let indexes = removals.get(parent);
      if (indexes === undefined) removals.set(parent, (indexes = new Set()));
      indexes.add(index);
    } else if (parent !== undefined && Object.hasOwn(parent, key)) {
      Reflect.deleteProperty(parent, key);
    } else {
      continue;
    }
    pruned.push(cut.filePath);
    changed = true;
  }
  // Highest index first, so the indexes of the items still to remove stay valid.
  for (const [list, indexes] of removals) {
    const fileIndexes = origins.get(list) ?? list.map((_item, index) => index);
    for (const index of [...indexes].sort((a, b) => b - a)) {
      list.splice(index, 1);
      fileIndexes.splice(index, 1);
    }
    origins.set(list, fileIndexes);
  }
  return changed;
}

/** A deep copy of parsed YAML: lists and mappings copied, YAML aliases no longer shared. */
function copyData(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copyData);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, copyData(inner)]));
  }
  return value;
}

function unescapePointer(token: string): string {
  return token.replaceAll('~1', '/').replaceAll('~0', '~');
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
    const token = unescapePointer(raw);
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
