// What every store kind shares around its own atomic steps: the per-operation timeout, the
// checks of what callers pass, the events telemetry turns into metrics, the health `GET /stores`
// shows, and the closed state. A kind implements only RecordBackend (and its LogBackend).

import type { Clock } from '../runtime/clock.ts';
import {
  LogIds,
  MAX_LOG_TRIM,
  decodeLogEntry,
  encodeLogEntry,
  encodeMeta,
  entryProblem,
  isLogId,
  queryProblem,
  rangeOf,
  streamProblem,
  trimBound,
  trimProblem,
} from './log.ts';
import type { EncodedLogEntry, LogRange, RawLogEntry } from './log.ts';
import { decodeRecord, encodeRecord, keyProblem, newToken, ttlProblem } from './records.ts';
import type { EncodedRecord, RawRecord } from './records.ts';
import { StoreError } from './store.ts';
import type {
  LogEntry,
  LogStore,
  RecordStore,
  RecordValue,
  Store,
  StoreErrorCode,
  StoreEvents,
  StoreHealth,
  StoreKind,
  StoreOperation,
  StoredRecord,
  TakeResult,
} from './store.ts';

/** The atomic steps of one store kind, on records already checked and encoded. */
export interface RecordBackend {
  /** Writes `record` unless a live record holds `key`; returns that record when one does. */
  take(key: string, record: EncodedRecord, ttlMs: number): Promise<RawRecord | undefined>;
  /** Overwrites the live record under `key` if it carries `record.token`. */
  replace(key: string, record: EncodedRecord, ttlMs: number): Promise<boolean>;
  /** Deletes the live record under `key` if it carries `token`. */
  release(key: string, token: string): Promise<boolean>;
  get(key: string): Promise<RawRecord | undefined>;
  /** The log steps of this kind. */
  readonly log: LogBackend;
  /** The StoreError code for a failure this kind threw. */
  classify(error: unknown): StoreErrorCode;
  /**
   * Set when every step settles before a timer armed as it starts could fire (an in-process
   * store: its work runs in the call, its commit at the latest in the check phase that follows,
   * ahead of any timer of the clock's, which fires through that phase): no per-operation
   * timeout is armed. Such a store bounds its own waits (sqlite's busy timeout).
   */
  readonly settlesAtOnce?: true;
  /**
   * The same record steps answered in the call, for a kind whose work is all done there (the
   * memory store): each operation then settles with one promise instead of a chain of them.
   */
  readonly immediate?: ImmediateRecordSteps;
  /** Work the store does by itself every `intervalMs` (a sweep of expired records), until closed. */
  readonly periodic?: { readonly operation: StoreOperation; readonly intervalMs: number; run(): void };
  close(): Promise<void>;
}

/** A backend's record steps whose results are there when they return. */
export interface ImmediateRecordSteps {
  take(key: string, record: EncodedRecord, ttlMs: number): RawRecord | undefined;
  replace(key: string, record: EncodedRecord, ttlMs: number): boolean;
  release(key: string, token: string): boolean;
  get(key: string): RawRecord | undefined;
}

/** The log steps of one store kind, on entries and queries already checked and encoded. */
export interface LogBackend {
  /** Writes `entry` unless its partition holds `maxEntries` already; false when it does. */
  append(stream: string, entry: EncodedLogEntry, maxEntries: number): Promise<boolean>;
  /** Entries in `range` without their bodies, and where the next page starts when the look stopped early. */
  list(stream: string, range: LogRange): Promise<{ entries: RawLogEntry[]; next?: string }>;
  get(stream: string, id: string): Promise<RawLogEntry | undefined>;
  update(stream: string, id: string, meta: string): Promise<boolean>;
  remove(stream: string, id: string): Promise<boolean>;
  stats(stream: string): Promise<{ partition: string; entries: number; oldest?: number }[]>;
  /** Deletes up to `max` of the partition's entries with ids below `below` or beyond the newest `keep`. */
  trim(stream: string, partition: string, bounds: { below?: string; keep?: number }, max: number): Promise<number>;
}

/** The bound of a log operation, when the store's own timeout is shorter. */
export const LOG_TIMEOUT_MS = 1000;

// Failures that say the store could not be reached; others (a refused value, a server's own
// error reply) come from a store that answered.
const UNREACHABLE: ReadonlySet<StoreErrorCode> = new Set(['timeout', 'unavailable']);

/** Reachability and the last error of one store, from operation outcomes and connection events. */
export class StoreStatus {
  readonly #name: string;
  readonly #kind: StoreKind;
  readonly #clock: Clock;
  readonly #events: StoreEvents | undefined;
  #reachable: boolean;
  #lastError: StoreHealth['lastError'];

  constructor(options: { name: string; kind: StoreKind; clock: Clock; events?: StoreEvents; reachable: boolean }) {
    this.#name = options.name;
    this.#kind = options.kind;
    this.#clock = options.clock;
    this.#events = options.events;
    this.#reachable = options.reachable;
  }

  reached(): void {
    this.#setReachable(true);
  }

  failed(error: StoreError): void {
    this.#lastError = { code: error.code, message: error.message, at: this.#clock.wallNow() };
    if (UNREACHABLE.has(error.code)) this.#setReachable(false, error);
  }

  health(): StoreHealth {
    return {
      name: this.#name,
      kind: this.#kind,
      reachable: this.#reachable,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
    };
  }

  #setReachable(reachable: boolean, error?: StoreError): void {
    if (reachable === this.#reachable) return;
    this.#reachable = reachable;
    this.#events?.emit({
      type: 'store-reachability',
      store: this.#name,
      kind: this.#kind,
      reachable,
      ...(error === undefined ? {} : { error }),
    });
  }
}

export interface GuardedStoreOptions {
  readonly name: string;
  readonly kind: StoreKind;
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly events?: StoreEvents;
  readonly status: StoreStatus;
  readonly backend: RecordBackend;
}

/** A store of any kind: its backend's steps, bounded in time, checked, observed. */
export class GuardedStore implements Store {
  readonly name: string;
  readonly kind: StoreKind;
  readonly records: RecordStore;
  readonly log: LogStore;
  readonly #options: GuardedStoreOptions;
  readonly #ids = new LogIds();
  #closing: Promise<void> | undefined;
  #cancelPeriodic: (() => void) | undefined;

  constructor(options: GuardedStoreOptions) {
    this.name = options.name;
    this.kind = options.kind;
    this.#options = options;
    const backend = options.backend;
    const immediate = backend.immediate;
    this.records =
      immediate === undefined
        ? {
            take: (key, value, ttlMs) => this.#take(key, value, ttlMs),
            replace: (key, token, value, ttlMs) =>
              this.#run('replace', () => {
                this.#check('replace', key, ttlMs);
                return backend.replace(key, this.#encode('replace', token, value), ttlMs);
              }),
            release: (key, token) =>
              this.#run('release', () => {
                this.#check('release', key);
                return backend.release(key, token);
              }),
            get: (key) =>
              this.#run(
                'get',
                () => {
                  this.#check('get', key);
                  return backend.get(key);
                },
                (raw) => (raw === undefined ? undefined : this.#decode('get', raw)),
              ),
          }
        : {
            take: (key, value, ttlMs) =>
              this.#runNow('take', () => {
                this.#check('take', key, ttlMs);
                const token = newToken();
                const current = immediate.take(key, this.#encode('take', token, value), ttlMs);
                return current === undefined ? { taken: true, token } : { taken: false, current: this.#decode('take', current) };
              }),
            replace: (key, token, value, ttlMs) =>
              this.#runNow('replace', () => {
                this.#check('replace', key, ttlMs);
                return immediate.replace(key, this.#encode('replace', token, value), ttlMs);
              }),
            release: (key, token) =>
              this.#runNow('release', () => {
                this.#check('release', key);
                return immediate.release(key, token);
              }),
            get: (key) =>
              this.#runNow('get', () => {
                this.#check('get', key);
                const raw = immediate.get(key);
                return raw === undefined ? undefined : this.#decode('get', raw);
              }),
          };
    this.log = this.#logStore(backend.log);
    const periodic = backend.periodic;
    if (periodic !== undefined) {
      const schedule = (): void => {
        this.#cancelPeriodic = options.clock.setTimer(periodic.intervalMs, () => {
          this.#background(periodic.operation, () => periodic.run());
          schedule();
        });
      };
      schedule();
    }
  }

  health(): StoreHealth {
    return this.#options.status.health();
  }

  close(): Promise<void> {
    this.#cancelPeriodic?.();
    this.#closing ??= this.#options.backend.close();
    return this.#closing;
  }

  /**
   * Runs the store's own work (a sweep of expired records) with the same events and health as
   * callers' operations. It has no caller to keep waiting, so no timeout; a failure is
   * reported, not thrown.
   */
  #background(operation: StoreOperation, work: () => void): void {
    const started = this.#options.clock.now();
    try {
      work();
      this.#observe(operation, started);
    } catch (cause) {
      this.#observe(operation, started, this.#storeError(operation, cause));
    }
  }

  #take(key: string, value: RecordValue, ttlMs: number): Promise<TakeResult> {
    const token = newToken();
    return this.#run(
      'take',
      () => {
        this.#check('take', key, ttlMs);
        return this.#options.backend.take(key, this.#encode('take', token, value), ttlMs);
      },
      (current): TakeResult => (current === undefined ? { taken: true, token } : { taken: false, current: this.#decode('take', current) }),
      // A take that wins after its caller was told "timeout" would hold the key until its TTL
      // runs out with nobody to finish it: give it back.
      (late) => {
        if (late === undefined) this.#options.backend.release(key, token).catch(() => undefined);
      },
    );
  }

  #logStore(log: LogBackend): LogStore {
    const checked = (operation: StoreOperation, problem: string | undefined): void => {
      if (problem !== undefined) throw new StoreError('invalid', `store "${this.name}": ${problem}`, { store: this.name, operation });
    };
    const checkId = (operation: StoreOperation, stream: string, id: string): void => {
      checked(operation, streamProblem(stream) ?? (isLogId(id) ? undefined : `"${String(id)}" is not an entry id`));
    };
    // Log operations run after a request's answer, or for an operator, never while a request
    // waits: they get a longer bound than the store's timeout, which is sized for requests.
    const timeoutMs = Math.max(this.#options.timeoutMs, LOG_TIMEOUT_MS);
    const run = <T>(operation: StoreOperation, attempt: () => Promise<T>): Promise<T> => this.#run(operation, attempt, undefined, undefined, timeoutMs);
    return {
      append: (stream, entry, maxEntries) =>
        run('append', async () => {
          checked('append', streamProblem(stream) ?? entryProblem(entry, maxEntries));
          const time = this.#options.clock.wallNow();
          const id = this.#ids.next(time);
          let encoded: EncodedLogEntry;
          try {
            encoded = encodeLogEntry(id, time, entry);
          } catch (cause) {
            throw new StoreError('invalid', `store "${this.name}": ${cause instanceof Error ? cause.message : String(cause)}`, { store: this.name, operation: 'append', cause });
          }
          return (await log.append(stream, encoded, maxEntries)) ? { appended: true as const, id, time } : { appended: false as const, reason: 'full' as const };
        }),
      list: (stream, query) =>
        run('list', async () => {
          checked('list', streamProblem(stream) ?? queryProblem(query));
          const page = await log.list(stream, rangeOf(query));
          const entries = page.entries.map((raw) => this.#decodeEntry('list', raw));
          return page.next === undefined ? { entries } : { entries, next: page.next };
        }),
      get: (stream, id) =>
        run('read', async () => {
          checkId('read', stream, id);
          const raw = await log.get(stream, id);
          return raw === undefined ? undefined : this.#decodeEntry('read', raw);
        }),
      update: (stream, id, meta) =>
        run('update', async () => {
          checkId('update', stream, id);
          let text: string;
          try {
            text = encodeMeta(meta);
          } catch (cause) {
            throw new StoreError('invalid', `store "${this.name}": ${cause instanceof Error ? cause.message : String(cause)}`, { store: this.name, operation: 'update', cause });
          }
          return log.update(stream, id, text);
        }),
      remove: (stream, id) =>
        run('remove', async () => {
          checkId('remove', stream, id);
          return log.remove(stream, id);
        }),
      stats: (stream) =>
        run('stats', async () => {
          checked('stats', streamProblem(stream));
          return log.stats(stream);
        }),
      trim: (stream, partition, bounds) =>
        run('trim', async () => {
          checked('trim', streamProblem(stream) ?? trimProblem(partition, bounds));
          const below = trimBound(bounds.before);
          return log.trim(stream, partition, { ...(below === undefined ? {} : { below }), ...(bounds.keep === undefined ? {} : { keep: bounds.keep }) }, MAX_LOG_TRIM);
        }),
    };
  }

  #decodeEntry(operation: StoreOperation, raw: RawLogEntry): LogEntry {
    try {
      return decodeLogEntry(raw);
    } catch (cause) {
      throw new StoreError('failed', `store "${this.name}" holds a log entry that is not valid JSON`, { store: this.name, operation, cause });
    }
  }

  #check(operation: StoreOperation, key: string, ttlMs?: number): void {
    const problem = keyProblem(key) ?? (ttlMs === undefined ? undefined : ttlProblem(ttlMs));
    if (problem !== undefined) throw new StoreError('invalid', `store "${this.name}": ${problem}`, { store: this.name, operation });
  }

  #encode(operation: StoreOperation, token: string, value: RecordValue): EncodedRecord {
    try {
      return encodeRecord(token, value);
    } catch (cause) {
      // Meta that JSON cannot hold (a BigInt, a cycle) or that is not an object.
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new StoreError('invalid', `store "${this.name}": ${reason}`, { store: this.name, operation, cause });
    }
  }

  #decode(operation: StoreOperation, raw: RawRecord): StoredRecord {
    try {
      return decodeRecord(raw);
    } catch (cause) {
      // Only Breakwater writes records, so this is a record damaged or written by something else.
      throw new StoreError('failed', `store "${this.name}" holds a record that is not valid JSON`, { store: this.name, operation, cause });
    }
  }

  // Not an async function: every request runs two of these, and a plain chain of callbacks
  // leaves less behind for the collector than an async frame and its awaits. What the backend
  // answered is turned into the caller's result (`read`) in the same callback that observes it.
  #run<R, T = R>(
    operation: StoreOperation,
    attempt: () => Promise<R>,
    read?: (answer: R) => T,
    onLateAnswer?: (answer: R) => void,
    timeoutMs = this.#options.timeoutMs,
  ): Promise<T> {
    const started = this.#options.clock.now();
    const pending =
      this.#closing === undefined
        ? this.#withinTimeout(operation, attempt, timeoutMs, onLateAnswer)
        : Promise.reject(new StoreError('closed', `store "${this.name}" is closed`, { store: this.name, operation }));
    return pending.then(
      (answer) => {
        let result: T;
        try {
          result = read === undefined ? (answer as unknown as T) : read(answer);
        } catch (cause) {
          throw this.#failed(operation, started, cause);
        }
        this.#observe(operation, started);
        return result;
      },
      (cause: unknown) => {
        throw this.#failed(operation, started, cause);
      },
    );
  }

  /** #run for a backend's immediate steps: `step` runs in the call, and one promise carries its result. */
  #runNow<T>(operation: StoreOperation, step: () => T): Promise<T> {
    const started = this.#options.clock.now();
    if (this.#closing !== undefined) {
      return Promise.reject(this.#failed(operation, started, new StoreError('closed', `store "${this.name}" is closed`, { store: this.name, operation })));
    }
    let result: T;
    try {
      result = step();
    } catch (cause) {
      return Promise.reject(this.#failed(operation, started, cause));
    }
    this.#observe(operation, started);
    return Promise.resolve(result);
  }

  /** The StoreError for an operation that failed with `cause`, observed as failed. */
  #failed(operation: StoreOperation, started: number, cause: unknown): StoreError {
    const error = this.#storeError(operation, cause);
    this.#observe(operation, started, error);
    return error;
  }

  /** Reports an operation's outcome to the events and the health. */
  #observe(operation: StoreOperation, started: number, error?: StoreError): void {
    const { clock, events, status } = this.#options;
    if (error === undefined) status.reached();
    else status.failed(error);
    if (events === undefined) return;
    const durationMs = clock.now() - started;
    events.emit(
      error === undefined
        ? { type: 'store-operation', store: this.name, kind: this.kind, operation, durationMs }
        : { type: 'store-operation', store: this.name, kind: this.kind, operation, durationMs, error },
    );
  }

  #withinTimeout<T>(operation: StoreOperation, attempt: () => Promise<T>, timeoutMs: number, onLateResult?: (result: T) => void): Promise<T> {
    let pending: Promise<T>;
    try {
      pending = attempt();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const { clock, backend } = this.#options;
    if (backend.settlesAtOnce === true) return pending;
    return new Promise<T>((resolve, reject) => {
      let timedOut = false;
      const cancel = clock.setTimer(timeoutMs, () => {
        timedOut = true;
        reject(new StoreError('timeout', `store "${this.name}" did not answer ${operation} within ${timeoutMs}ms`, { store: this.name, operation }));
      });
      pending.then(
        (result) => {
          if (timedOut) onLateResult?.(result);
          else {
            cancel();
            resolve(result);
          }
        },
        (error: unknown) => {
          if (timedOut) return;
          cancel();
          reject(error as Error);
        },
      );
    });
  }

  #storeError(operation: StoreOperation, cause: unknown): StoreError {
    if (cause instanceof StoreError) return cause;
    const code = this.#options.backend.classify(cause);
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new StoreError(code, `store "${this.name}" failed to ${operation}: ${reason}`, { store: this.name, operation, cause });
  }
}
