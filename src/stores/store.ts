// The state-store interface: what idempotency records and dead letters are kept in. One small
// interface with three kinds behind it (memory, sqlite, redis), as undici's Dispatcher has
// interchangeable implementations, and two facets: keyed records with a TTL, and append-only
// logs. Nothing here knows what a policy keeps in a record or a log entry.

import type { StoreType } from '../config/types.ts';

export type StoreKind = StoreType;

export type Json = string | number | boolean | null | readonly Json[] | JsonObject;
export interface JsonObject {
  readonly [key: string]: Json;
}

/** What a caller writes: small JSON metadata and, optionally, bytes such as a response body. */
export interface RecordValue {
  readonly meta: JsonObject;
  readonly body?: Uint8Array;
}

/** A record as read back. The owner token is not part of it: only the taker holds that. */
export interface StoredRecord {
  readonly meta: JsonObject;
  readonly body?: Buffer;
}

export type TakeResult =
  /** The key was free (or its record had expired): the caller owns it now, through `token`. */
  | { readonly taken: true; readonly token: string }
  /** A live record holds the key. */
  | { readonly taken: false; readonly current: StoredRecord };

/**
 * Keyed records with a time to live, and the atomic steps that make a record ownable: whoever
 * takes a key gets an owner token, and only that token can replace or release the record. An
 * expired record counts as absent everywhere. Every operation settles within the store's
 * timeout, rejecting with a StoreError when it cannot.
 */
export interface RecordStore {
  /** Put-if-absent: writes `value` for `ttlMs` unless a live record holds the key. */
  take(key: string, value: RecordValue, ttlMs: number): Promise<TakeResult>;
  /** Compare-and-set on the owner token: overwrites the record and its TTL if `token` still owns it. */
  replace(key: string, token: string, value: RecordValue, ttlMs: number): Promise<boolean>;
  /** Deletes the record if `token` still owns it. */
  release(key: string, token: string): Promise<boolean>;
  /** The live record under `key`, if any. */
  get(key: string): Promise<StoredRecord | undefined>;
}

/** What a caller appends to a log. */
export interface LogEntryValue {
  /** The part of the log the entry belongs to (a dead letter's route): counted, bounded and trimmed apart. */
  readonly partition: string;
  /** Short strings the log can be filtered by (a dead letter's reason). */
  readonly tags?: Readonly<Record<string, string>>;
  readonly meta: JsonObject;
  readonly body?: Uint8Array;
}

/** A log entry as read back. */
export interface LogEntry {
  /**
   * Given by the store when the entry is appended: unique across every handle on the same
   * state, and ordered as the entries were appended (to the millisecond across handles).
   */
  readonly id: string;
  /** When the entry was appended: wall-clock milliseconds since the epoch. */
  readonly time: number;
  readonly partition: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly meta: JsonObject;
  /** Only `get` reads bodies; listings leave them out. */
  readonly body?: Buffer;
}

export interface LogQuery {
  readonly partition?: string;
  /** Entries whose tags hold every one of these values. */
  readonly tags?: Readonly<Record<string, string>>;
  /** Entries appended at or after this wall-clock instant (ms since the epoch). */
  readonly since?: number;
  /** Entries appended at or before this wall-clock instant (ms since the epoch). */
  readonly until?: number;
  /** Newest first (the default) or oldest first. */
  readonly order?: 'newest' | 'oldest';
  /** The most entries one page holds, 1 to MAX_LOG_PAGE. */
  readonly limit: number;
  /** A page's `next`: the listing goes on past that entry. */
  readonly after?: string;
}

export interface LogPage {
  readonly entries: readonly LogEntry[];
  /**
   * Where the next page starts, when more entries may match; absent at the end. A page may
   * hold fewer than `limit` entries and still have a `next`: a store looks at a bounded number
   * of entries per page, so one call never runs long.
   */
  readonly next?: string;
}

export type AppendResult =
  | { readonly appended: true; readonly id: string; readonly time: number }
  /** The partition already holds `maxEntries`: nothing was written. */
  | { readonly appended: false; readonly reason: 'full' };

export interface PartitionStats {
  readonly partition: string;
  readonly entries: number;
  /** When its oldest entry was appended (wall-clock ms); absent when it holds none. */
  readonly oldest?: number;
}

/**
 * Append-only logs of entries, each log (`stream`) split into partitions that are counted,
 * bounded and trimmed on their own. An entry's body is written once; its meta may be updated
 * (a history of what was done with it). Every operation settles within the store's timeout,
 * rejecting with a StoreError when it cannot.
 */
export interface LogStore {
  /** Appends an entry unless its partition already holds `maxEntries`; the check and the write are one atomic step. */
  append(stream: string, entry: LogEntryValue, maxEntries: number): Promise<AppendResult>;
  /** One page of the entries that match, without their bodies. */
  list(stream: string, query: LogQuery): Promise<LogPage>;
  /** The entry with its body. */
  get(stream: string, id: string): Promise<LogEntry | undefined>;
  /** Replaces an entry's meta; false when there is no such entry. */
  update(stream: string, id: string, meta: JsonObject): Promise<boolean>;
  /** Deletes an entry; false when there was no such entry. */
  remove(stream: string, id: string): Promise<boolean>;
  /** Every partition that holds entries, with its count and the time of its oldest entry. */
  stats(stream: string): Promise<PartitionStats[]>;
  /**
   * Deletes a partition's entries appended before `before` (wall-clock ms), and beyond the
   * newest `keep`; with neither, all of them. Resolves with how many were deleted. A store
   * deletes at most MAX_LOG_TRIM entries per call, so a large trim is a loop of short ones.
   */
  trim(stream: string, partition: string, bounds: { readonly before?: number; readonly keep?: number }): Promise<number>;
}

export type StoreOperation =
  | 'open'
  | 'take'
  | 'replace'
  | 'release'
  | 'get'
  | 'sweep'
  | 'append'
  | 'list'
  | 'read'
  | 'update'
  | 'remove'
  | 'stats'
  | 'trim';

export type StoreErrorCode =
  /** No answer within the store's timeout; the operation may still have happened. */
  | 'timeout'
  /** The store cannot be reached (connection refused or lost, offline, file unusable). */
  | 'unavailable'
  /** The store was closed. */
  | 'closed'
  /** The value is larger than the store will keep. */
  | 'too_large'
  /** The caller passed something no store accepts (an empty key, a TTL that is not a positive integer). */
  | 'invalid'
  /** The store answered with an error of its own. */
  | 'failed';

/** How every store operation fails: a stable code to decide by, never by message. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly store: string;
  readonly operation: StoreOperation;

  constructor(code: StoreErrorCode, message: string, where: { store: string; operation: StoreOperation; cause?: unknown }) {
    super(message, where.cause === undefined ? undefined : { cause: where.cause });
    this.name = 'StoreError';
    this.code = code;
    this.store = where.store;
    this.operation = where.operation;
  }
}

/** What `GET /stores` shows for one store. */
export interface StoreHealth {
  readonly name: string;
  readonly kind: StoreKind;
  /** Whether the last contact with the store succeeded. */
  readonly reachable: boolean;
  readonly lastError?: {
    readonly code: StoreErrorCode;
    readonly message: string;
    /** Wall-clock milliseconds since the epoch. */
    readonly at: number;
  };
}

export interface Store {
  readonly name: string;
  readonly kind: StoreKind;
  readonly records: RecordStore;
  readonly log: LogStore;
  health(): StoreHealth;
  /** Stops background work and lets go of files and connections; later operations fail with `closed`. */
  close(): Promise<void>;
}

/**
 * What stores report, for telemetry to turn into
 * `breakwater_store_operation_duration_seconds{store, operation}`,
 * `breakwater_store_errors_total{store, operation}` and log lines.
 */
export type StoreEvent =
  | {
      readonly type: 'store-operation';
      readonly store: string;
      readonly kind: StoreKind;
      readonly operation: StoreOperation;
      readonly durationMs: number;
      readonly error?: StoreError;
    }
  | {
      readonly type: 'store-reachability';
      readonly store: string;
      readonly kind: StoreKind;
      readonly reachable: boolean;
      readonly error?: StoreError;
    };

export interface StoreEvents {
  emit(event: StoreEvent): void;
}
