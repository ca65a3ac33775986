// The state-store interface (contract section 10): what idempotency records, and later dead
// letters, are kept in. One small interface with three kinds behind it (memory, sqlite,
// redis), as undici's Dispatcher has interchangeable implementations; nothing here knows what a
// policy keeps in a record.

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

export type StoreOperation = 'open' | 'take' | 'replace' | 'release' | 'get' | 'sweep';

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
