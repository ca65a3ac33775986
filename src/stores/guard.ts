// What every store kind shares around its own atomic steps: the per-operation timeout, the
// checks of what callers pass, the events telemetry turns into metrics, the health `GET /stores`
// shows, and the closed state. A kind implements only RecordBackend.

import type { Clock } from '../runtime/clock.ts';
import { decodeRecord, encodeRecord, keyProblem, newToken, ttlProblem } from './records.ts';
import type { EncodedRecord, RawRecord } from './records.ts';
import { StoreError } from './store.ts';
import type {
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
  /** The StoreError code for a failure this kind threw. */
  classify(error: unknown): StoreErrorCode;
  /** Work the store does by itself every `intervalMs` (a sweep of expired records), until closed. */
  readonly periodic?: { readonly operation: StoreOperation; readonly intervalMs: number; run(): void };
  close(): Promise<void>;
}

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
  readonly #options: GuardedStoreOptions;
  #closing: Promise<void> | undefined;
  #cancelPeriodic: (() => void) | undefined;

  constructor(options: GuardedStoreOptions) {
    this.name = options.name;
    this.kind = options.kind;
    this.#options = options;
    const backend = options.backend;
    this.records = {
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
        this.#run('get', async (): Promise<StoredRecord | undefined> => {
          this.#check('get', key);
          const raw = await backend.get(key);
          return raw === undefined ? undefined : this.#decode('get', raw);
        }),
    };
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
      async (): Promise<TakeResult> => {
        this.#check('take', key, ttlMs);
        const current = await this.#options.backend.take(key, this.#encode('take', token, value), ttlMs);
        return current === undefined ? { taken: true, token } : { taken: false, current: this.#decode('take', current) };
      },
      // A take that wins after its caller was told "timeout" would hold the key until its TTL
      // runs out with nobody to finish it: give it back.
      (late) => {
        if (late.taken) this.#options.backend.release(key, late.token).catch(() => undefined);
      },
    );
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

  async #run<T>(operation: StoreOperation, attempt: () => Promise<T>, onLateResult?: (result: T) => void): Promise<T> {
    const started = this.#options.clock.now();
    try {
      if (this.#closing !== undefined) throw new StoreError('closed', `store "${this.name}" is closed`, { store: this.name, operation });
      const result = await this.#withinTimeout(operation, attempt, onLateResult);
      this.#observe(operation, started);
      return result;
    } catch (cause) {
      const error = this.#storeError(operation, cause);
      this.#observe(operation, started, error);
      throw error;
    }
  }

  /** Reports an operation's outcome to the events and the health. */
  #observe(operation: StoreOperation, started: number, error?: StoreError): void {
    const { clock, events, status } = this.#options;
    if (error === undefined) status.reached();
    else status.failed(error);
    events?.emit({
      type: 'store-operation',
      store: this.name,
      kind: this.kind,
      operation,
      durationMs: clock.now() - started,
      ...(error === undefined ? {} : { error }),
    });
  }

  #withinTimeout<T>(operation: StoreOperation, attempt: () => Promise<T>, onLateResult?: (result: T) => void): Promise<T> {
    let pending: Promise<T>;
    try {
      pending = attempt();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const { clock, timeoutMs } = this.#options;
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
