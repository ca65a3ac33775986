// The pure parts every store kind shares for logs: entry ids, checking what callers pass,
// turning an entry into what a backend writes and back, and the id bounds a query becomes.

import { randomBytes } from 'node:crypto';
import type { JsonObject, LogEntry, LogEntryValue, LogQuery } from './store.ts';

/** The most entries one page of a listing holds. */
export const MAX_LOG_PAGE = 1000;
/** The most entries one trim deletes; a caller trims more in a loop, so no call holds a store long. */
export const MAX_LOG_TRIM = 1000;
/** Stream and partition names, and tag names and values, name keys and columns: keep them short. */
export const MAX_LOG_NAME_BYTES = 256;

// Crockford's base 32, as ULIDs use it: its characters sort in the order of their values, so
// ids sort as text in the order they were made.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_CHARS = 10;
const RANDOM_CHARS = 16;
const ID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const MAX_TIME = 2 ** 48 - 1;

/**
 * Entry ids: ULIDs (48 bits of wall-clock milliseconds, then 80 random bits), made monotonic
 * within one process: ids made in the same millisecond, or after the clock stepped back, take
 * the previous id's time and its random part plus one. So a process's ids sort in the order it
 * made them, and ids from several replicas sort by time to the millisecond without colliding.
 */
export class LogIds {
  #lastTime = -1;
  readonly #random = new Array<number>(RANDOM_CHARS).fill(0);
  readonly #randomBytes: (size: number) => Uint8Array;

  constructor(random: (size: number) => Uint8Array = randomBytes) {
    this.#randomBytes = random;
  }

  /** A new id, for an entry appended at `wallMs`; its time part is `wallMs` unless an earlier id was later. */
  next(wallMs: number): string {
    let time = Math.max(0, Math.min(MAX_TIME, Math.floor(wallMs)));
    if (time <= this.#lastTime) {
      time = this.#lastTime;
      if (!this.#increment()) {
        // 2^80 ids in one millisecond: move on to the next one.
        time += 1;
        this.#fresh();
      }
    } else {
      this.#fresh();
    }
    this.#lastTime = time;
    return encodeTime(time) + this.#random.map((digit) => ALPHABET[digit]).join('');
  }

  #fresh(): void {
    const bytes = this.#randomBytes(RANDOM_CHARS);
    for (let i = 0; i < RANDOM_CHARS; i++) this.#random[i] = bytes[i]! & 31;
  }

  /** Adds one to the random part; false when it overflows. */
  #increment(): boolean {
    for (let i = RANDOM_CHARS - 1; i >= 0; i--) {
      if (this.#random[i]! < 31) {
        this.#random[i]! += 1;
        return true;
      }
      this.#random[i] = 0;
    }
    return false;
  }
}

function encodeTime(time: number): string {
  let text = '';
  let rest = time;
  for (let i = 0; i < TIME_CHARS; i++) {
    text = ALPHABET[rest % 32]! + text;
    rest = Math.floor(rest / 32);
  }
  return text;
}

/** Whether `id` is one LogIds makes. */
export function isLogId(id: string): boolean {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

/** The lowest id an entry appended at `wallMs` can have. */
export function lowestIdAt(wallMs: number): string {
  return encodeTime(Math.max(0, Math.min(MAX_TIME, Math.ceil(wallMs)))) + '0'.repeat(RANDOM_CHARS);
}

/** The highest id an entry appended at `wallMs` can have. */
export function highestIdAt(wallMs: number): string {
  return encodeTime(Math.max(0, Math.min(MAX_TIME, Math.floor(wallMs)))) + 'Z'.repeat(RANDOM_CHARS);
}

/** An entry as a backend writes it. */
export interface EncodedLogEntry {
  readonly id: string;
  readonly time: number;
  readonly partition: string;
  /** `tags` as JSON text. */
  readonly tags: string;
  /** `meta` as JSON text. */
  readonly meta: string;
  readonly body: Uint8Array | undefined;
}

/** An entry as a backend reads it: JSON as text or bytes, and the body when it was asked for. */
export interface RawLogEntry {
  readonly id: string;
  readonly time: number;
  readonly partition: string;
  readonly tags: string | Uint8Array;
  readonly meta: string | Uint8Array;
  readonly body: Uint8Array | undefined;
}

/** A query as backends run it: inclusive id bounds, an exclusive start, a bounded look. */
export interface LogRange {
  readonly partition: string | undefined;
  readonly tags: readonly (readonly [string, string])[];
  readonly order: 'newest' | 'oldest';
  /** The lowest id that may match, included. */
  readonly low: string;
  /** The highest id that may match, included. */
  readonly high: string;
  /** The entry the listing goes on past (excluded), when it is a later page. */
  readonly after: string | undefined;
  readonly limit: number;
  /** The most entries a backend looks at for this page; it stops there and says where to go on. */
  readonly scan: number;
}

const LOWEST = '0'.repeat(TIME_CHARS + RANDOM_CHARS);
const HIGHEST = 'Z'.repeat(TIME_CHARS + RANDOM_CHARS);

// A filtered page looks at this many entries per entry it may return, and at least a full page.
const SCAN_PER_ENTRY = 10;

/** The range a checked query covers. */
export function rangeOf(query: LogQuery): LogRange {
  const limit = query.limit;
  return {
    partition: query.partition,
    tags: Object.entries(query.tags ?? {}),
    order: query.order ?? 'newest',
    low: query.since === undefined ? LOWEST : lowestIdAt(query.since),
    high: query.until === undefined ? HIGHEST : highestIdAt(query.until),
    after: query.after,
    limit,
    scan: Math.max(MAX_LOG_PAGE, limit * SCAN_PER_ENTRY),
  };
}

/** Whether a listed entry with these tags matches the range's tag filter. */
export function tagsMatch(tags: Readonly<Record<string, string>>, wanted: LogRange['tags']): boolean {
  for (const [name, value] of wanted) if (tags[name] !== value) return false;
  return true;
}

/** Whether `id` lies inside the range's bounds and past its start. */
export function inRange(id: string, range: LogRange): boolean {
  if (id < range.low || id > range.high) return false;
  if (range.after === undefined) return true;
  return range.order === 'newest' ? id < range.after : id > range.after;
}

// Tag names become JSON paths (sqlite) and hash fields: letters, digits, "_" and "-" only.
const TAG_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function tagNameProblem(name: string): string | undefined {
  return TAG_NAME.test(name) ? undefined : `the tag name "${name}" must be 1 to 64 letters, digits, "_" or "-"`;
}

function nameProblem(what: string, name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return `the ${what} must be a non-empty string`;
  if (Buffer.byteLength(name) > MAX_LOG_NAME_BYTES) return `the ${what} is longer than ${MAX_LOG_NAME_BYTES} bytes`;
  return undefined;
}

/** Why a stream name cannot be used, or undefined when it can. */
export function streamProblem(stream: string): string | undefined {
  return nameProblem('stream name', stream);
}

/** Why an entry cannot be appended, or undefined when it can. */
export function entryProblem(entry: LogEntryValue, maxEntries: number): string | undefined {
  const partition = nameProblem('partition', entry.partition);
  if (partition !== undefined) return partition;
  for (const [name, value] of Object.entries(entry.tags ?? {})) {
    const problem = tagNameProblem(name) ?? nameProblem(`value of tag "${name}"`, value);
    if (problem !== undefined) return problem;
  }
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) return `maxEntries must be a positive integer, got ${maxEntries}`;
  return undefined;
}

/** Why a query cannot be run, or undefined when it can. */
export function queryProblem(query: LogQuery): string | undefined {
  if (!Number.isSafeInteger(query.limit) || query.limit < 1 || query.limit > MAX_LOG_PAGE) return `the limit must be an integer from 1 to ${MAX_LOG_PAGE}, got ${query.limit}`;
  if (query.partition !== undefined) {
    const problem = nameProblem('partition', query.partition);
    if (problem !== undefined) return problem;
  }
  for (const [name, value] of Object.entries(query.tags ?? {})) {
    const problem = tagNameProblem(name) ?? (typeof value === 'string' ? undefined : `the value of tag "${name}" must be a string`);
    if (problem !== undefined) return problem;
  }
  if (query.after !== undefined && !isLogId(query.after)) return `"${String(query.after)}" is not an entry id`;
  for (const key of ['since', 'until'] as const) {
    const value = query[key];
    if (value !== undefined && !Number.isFinite(value)) return `${key} must be a time in milliseconds`;
  }
  return undefined;
}

/** Why trim bounds cannot be used, or undefined when they can. */
export function trimProblem(partition: string, bounds: { readonly before?: number; readonly keep?: number }): string | undefined {
  const problem = nameProblem('partition', partition);
  if (problem !== undefined) return problem;
  if (bounds.before !== undefined && !Number.isFinite(bounds.before)) return 'before must be a time in milliseconds';
  if (bounds.keep !== undefined && (!Number.isSafeInteger(bounds.keep) || bounds.keep < 0)) return `keep must be a non-negative integer, got ${bounds.keep}`;
  return undefined;
}

export function encodeLogEntry(id: string, time: number, entry: LogEntryValue): EncodedLogEntry {
  if (entry.meta === null || typeof entry.meta !== 'object' || Array.isArray(entry.meta)) {
    throw new TypeError("a log entry's meta must be a JSON object");
  }
  return { id, time, partition: entry.partition, tags: JSON.stringify(entry.tags ?? {}), meta: JSON.stringify(entry.meta), body: entry.body };
}

export function encodeMeta(meta: JsonObject): string {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new TypeError("a log entry's meta must be a JSON object");
  return JSON.stringify(meta);
}

function text(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
}

export function decodeLogEntry(raw: RawLogEntry): LogEntry {
  const entry = {
    id: raw.id,
    time: raw.time,
    partition: raw.partition,
    tags: JSON.parse(text(raw.tags)) as Record<string, string>,
    meta: JSON.parse(text(raw.meta)) as JsonObject,
  };
  if (raw.body === undefined) return entry;
  const body = Buffer.isBuffer(raw.body) ? raw.body : Buffer.from(raw.body.buffer, raw.body.byteOffset, raw.body.byteLength);
  return { ...entry, body };
}

/** The partition's id bound below which `trim` deletes: entries appended before `before`. */
export function trimBound(before: number | undefined): string | undefined {
  return before === undefined ? undefined : lowestIdAt(before);
}
