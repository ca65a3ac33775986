// The sqlite store: records in a file on local disk through Node's built-in node:sqlite (no
// native add-on), so they survive a restart of the process or the pod (with a volume). Each
// step is one statement or one transaction; every read and write compares expiry with the
// wall clock, since the file outlives the process and its monotonic clock.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { SqliteStoreConfig } from '../config/types.ts';
import type { Clock } from '../runtime/clock.ts';
import type { LogBackend, RecordBackend } from './guard.ts';
import { tagsMatch } from './log.ts';
import type { RawLogEntry } from './log.ts';
import type { RawRecord } from './records.ts';
import { StoreError } from './store.ts';
import type { StoreErrorCode } from './store.ts';

/** Marks the file as Breakwater's (PRAGMA application_id), so another program's database is refused. */
export const APPLICATION_ID = 0x42_57_53_54; // "BWST"

// MIGRATIONS[n] takes a file from schema version n to n + 1 (PRAGMA user_version). Released
// steps are never edited: a file written by any earlier Breakwater must still open.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE records (
     key TEXT PRIMARY KEY,
     token TEXT NOT NULL,
     meta TEXT NOT NULL,
     body BLOB,
     expires_at INTEGER NOT NULL -- wall-clock milliseconds since the epoch
   );
   CREATE INDEX records_by_expiry ON records (expires_at);`,
  // Logs: one row per entry; ids sort in append order. Each partition's count is kept by
  // triggers in log_partitions, so that bounding a partition at append reads one row instead
  // of counting its entries.
  `CREATE TABLE log_entries (
     stream TEXT NOT NULL,
     id TEXT NOT NULL,
     partition TEXT NOT NULL,
     time INTEGER NOT NULL, -- wall-clock milliseconds since the epoch
     tags TEXT NOT NULL,
     meta TEXT NOT NULL,
     body BLOB,
     PRIMARY KEY (stream, id)
   );
   CREATE INDEX log_entries_by_partition ON log_entries (stream, partition, id);
   CREATE TABLE log_partitions (
     stream TEXT NOT NULL,
     partition TEXT NOT NULL,
     entries INTEGER NOT NULL,
     PRIMARY KEY (stream, partition)
   ) WITHOUT ROWID;
   CREATE TRIGGER log_entries_counted AFTER INSERT ON log_entries BEGIN
     INSERT INTO log_partitions (stream, partition, entries) VALUES (new.stream, new.partition, 1)
       ON CONFLICT (stream, partition) DO UPDATE SET entries = entries + 1;
   END;
   CREATE TRIGGER log_entries_uncounted AFTER DELETE ON log_entries BEGIN
     UPDATE log_partitions SET entries = entries - 1 WHERE stream = old.stream AND partition = old.partition;
   END;`,
];
export const SCHEMA_VERSION = MIGRATIONS.length;

// Expired rows are deleted in batches, so that one sweep never holds the write lock long.
const SWEEP_BATCH = 500;
const SWEEP_BATCHES_PER_RUN = 20;

interface Row {
  meta: string;
  body: Uint8Array | null;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Writes that arrive in one turn of the event loop share one transaction (a group commit),
 * committed once the turn's callbacks have run: a commit, and its share of the WAL's
 * checkpoints, is paid per turn rather than per write. Each write's promise settles only
 * after its commit, so nothing is answered on a write that is not in the file. Reads on the
 * connection see the open group's writes, as the writes of one connection always see each
 * other.
 */
export class GroupCommit {
  /**
   * The group open in this process, on any connection. Another connection to the same file
   * would wait for its lock on this very thread, which is the one that must commit it: so a
   * group is committed before another connection begins one.
   */
  static #open: GroupCommit | null = null;
  readonly #db: DatabaseSync;
  #waiters: Waiter[] | null = null;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Runs `step` in the turn's transaction; resolves with its result once that is committed. */
  run<T>(step: () => T): Promise<T> {
    if (this.#waiters === null) {
      GroupCommit.#open?.commitNow();
      // IMMEDIATE takes the write lock before the group's first read, so that two connections
      // to one file cannot both see a key free and both write it.
      try {
        this.#db.exec('BEGIN IMMEDIATE');
      } catch (error) {
        return Promise.reject(error);
      }
      this.#waiters = [];
      GroupCommit.#open = this;
      setImmediate(() => this.commitNow());
    }
    const waiters = this.#waiters;
    let result: T;
    try {
      result = step();
    } catch (error) {
      // A failed statement undoes only itself, unless SQLite had to end the transaction.
      if (!this.#db.isTransaction) this.#settle(error);
      return Promise.reject(error);
    }
    return new Promise<T>((resolve, reject) => {
      waiters.push({ resolve: () => resolve(result), reject });
    });
  }

  /** Commits the open group, if any, and settles its writes. */
  commitNow(): void {
    if (this.#waiters === null) return;
    try {
      if (this.#db.isOpen && this.#db.isTransaction) this.#db.exec('COMMIT');
    } catch (error) {
      if (this.#db.isOpen && this.#db.isTransaction) this.#db.exec('ROLLBACK');
      this.#settle(error);
      return;
    }
    this.#settle(undefined);
  }

  #settle(error: unknown): void {
    const waiters = this.#waiters ?? [];
    this.#waiters = null;
    if (GroupCommit.#open === this) GroupCommit.#open = null;
    for (const waiter of waiters) {
      if (error === undefined) waiter.resolve();
      else waiter.reject(error);
    }
  }
}

/**
 * Opens (creating the file and its folder when missing) and migrates the database. Throws a
 * StoreError when the file cannot be used: unreadable, another program's, or written by a
 * newer Breakwater.
 */
export function sqliteBackend(
  config: Pick<SqliteStoreConfig, 'name' | 'path' | 'timeoutMs'>,
  clock: Clock,
  sweepIntervalMs: number,
): RecordBackend {
  let db: DatabaseSync;
  try {
    mkdirSync(dirname(config.path), { recursive: true });
    // A write that finds the file locked by another connection waits at most the store's
    // timeout (SQLite's busy timeout), then fails instead of hanging.
    db = new DatabaseSync(config.path, { timeout: config.timeoutMs });
    // WAL lets readers go on while one writer writes. synchronous=NORMAL in WAL mode keeps the
    // file consistent through any crash and may lose only the last commits on power loss.
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
    migrate(db, config.path);
  } catch (cause) {
    if (cause instanceof StoreError) throw cause;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new StoreError('unavailable', `cannot open the sqlite store "${config.name}" at ${config.path}: ${reason}`, {
      store: config.name,
      operation: 'open',
      cause,
    });
  }

  const selectLive = db.prepare('SELECT meta, body FROM records WHERE key = ? AND expires_at >= ?');
  const upsert = db.prepare(
    `INSERT INTO records (key, token, meta, body, expires_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET token = excluded.token, meta = excluded.meta, body = excluded.body, expires_at = excluded.expires_at`,
  );
  const updateOwned = db.prepare('UPDATE records SET meta = ?, body = ?, expires_at = ? WHERE key = ? AND token = ? AND expires_at >= ?');
  const deleteOwned = db.prepare('DELETE FROM records WHERE key = ? AND token = ? AND expires_at >= ?');
  const deleteExpired = db.prepare('DELETE FROM records WHERE rowid IN (SELECT rowid FROM records WHERE expires_at < ? LIMIT ?)');

  const raw = (row: Row): RawRecord => ({ meta: row.meta, body: row.body ?? undefined });
  const changed = (result: { changes: number | bigint }): boolean => Number(result.changes) === 1;
  const writes = new GroupCommit(db);
  const log = sqliteLog(db, writes);

  return {
    take(key, record, ttlMs) {
      return writes.run(() => {
        const now = clock.wallNow();
        const current = selectLive.get(key, now) as Row | undefined;
        if (current === undefined) upsert.run(key, record.token, record.meta, record.body ?? null, now + ttlMs);
        return current === undefined ? undefined : raw(current);
      });
    },
    replace(key, record, ttlMs) {
      return writes.run(() => {
        const now = clock.wallNow();
        return changed(updateOwned.run(record.meta, record.body ?? null, now + ttlMs, key, record.token, now));
      });
    },
    release(key, token) {
      return writes.run(() => changed(deleteOwned.run(key, token, clock.wallNow())));
    },
    async get(key) {
      const row = selectLive.get(key, clock.wallNow()) as Row | undefined;
      return row === undefined ? undefined : raw(row);
    },
    // Reads skip expired rows already; the sweep only gives their space back.
    periodic: {
      operation: 'sweep',
      intervalMs: sweepIntervalMs,
      run() {
        const now = clock.wallNow();
        for (let batch = 0; batch < SWEEP_BATCHES_PER_RUN; batch++) {
          if (Number(deleteExpired.run(now, SWEEP_BATCH).changes) < SWEEP_BATCH) break;
        }
      },
    },
    log,
    // Statements run in the call, waiting at most the busy timeout for a lock; commits follow
    // with setImmediate, before any timer could fire.
    settlesAtOnce: true,
    classify: classifySqliteError,
    async close() {
      writes.commitNow();
      if (db.isOpen) db.close();
    },
  };
}

interface LogRow {
  id: string;
  time: number;
  partition: string;
  tags: string;
  meta: string;
  body?: Uint8Array | null;
}

function sqliteLog(db: DatabaseSync, writes: GroupCommit): LogBackend {
  const countOf = db.prepare('SELECT entries FROM log_partitions WHERE stream = ? AND partition = ?');
  const insert = db.prepare('INSERT INTO log_entries (stream, id, partition, time, tags, meta, body) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const selectOne = db.prepare('SELECT id, time, partition, tags, meta, body FROM log_entries WHERE stream = ? AND id = ?');
  const selectListed = db.prepare('SELECT id, time, partition, tags, meta FROM log_entries WHERE stream = ? AND id = ?');
  const updateMeta = db.prepare('UPDATE log_entries SET meta = ? WHERE stream = ? AND id = ?');
  const deleteOne = db.prepare('DELETE FROM log_entries WHERE stream = ? AND id = ?');
  const selectStats = db.prepare(
    `SELECT p.partition AS partition, p.entries AS entries,
       (SELECT e.time FROM log_entries e WHERE e.stream = p.stream AND e.partition = p.partition ORDER BY e.id LIMIT 1) AS oldest
     FROM log_partitions p WHERE p.stream = ? AND p.entries > 0 ORDER BY p.partition`,
  );
  const deleteOldest = db.prepare(
    'DELETE FROM log_entries WHERE rowid IN (SELECT rowid FROM log_entries WHERE stream = ? AND partition = ? AND id < ? ORDER BY id LIMIT ?)',
  );
  // The highest id sorts below this, so `id < HIGHER` holds for every entry.
  const HIGHER = '~';

  const raw = (row: LogRow): RawLogEntry => ({
    id: row.id,
    time: Number(row.time),
    partition: row.partition,
    tags: row.tags,
    meta: row.meta,
    body: row.body ?? undefined,
  });

  return {
    append(stream, entry, maxEntries) {
      // In the turn's transaction, so two connections to one file cannot both see room for one
      // more entry; the count includes the batch's own earlier inserts (the triggers keep it).
      return writes.run(() => {
        const count = (countOf.get(stream, entry.partition) as { entries: number } | undefined)?.entries ?? 0;
        if (count >= maxEntries) return false;
        insert.run(stream, entry.id, entry.partition, entry.time, entry.tags, entry.meta, entry.body ?? null);
        return true;
      });
    },
    async list(stream, range) {
      const newest = range.order === 'newest';
      const where = ['stream = ?', 'id >= ?', 'id <= ?'];
      const params: (string | number)[] = [stream, range.low, range.high];
      if (range.partition !== undefined) {
        where.push('partition = ?');
        params.push(range.partition);
      }
      if (range.after !== undefined) {
        where.push(newest ? 'id < ?' : 'id > ?');
        params.push(range.after);
      }
      const order = `ORDER BY id ${newest ? 'DESC' : 'ASC'}`;
      if (range.tags.length === 0) {
        // One more than a page says whether another page follows.
        const rows = db.prepare(`SELECT id, time, partition, tags, meta FROM log_entries WHERE ${where.join(' AND ')} ${order} LIMIT ?`).all(...params, range.limit + 1) as unknown as LogRow[];
        const page = rows.slice(0, range.limit).map(raw);
        return rows.length > range.limit ? { entries: page, next: page[page.length - 1]!.id } : { entries: page };
      }
      // A tag filter: look at a bounded window of ids and their tags, then read the matches.
      const window = db.prepare(`SELECT id, tags FROM log_entries WHERE ${where.join(' AND ')} ${order} LIMIT ?`).all(...params, range.scan + 1) as unknown as { id: string; tags: string }[];
      const matches: string[] = [];
      let next: string | undefined;
      for (let i = 0; i < window.length; i++) {
        const row = window[i]!;
        if (i === range.scan) {
          next = window[i - 1]!.id;
          break;
        }
        if (!tagsMatch(JSON.parse(row.tags) as Record<string, string>, range.tags)) continue;
        if (matches.length === range.limit) {
          next = matches[matches.length - 1];
          break;
        }
        matches.push(row.id);
      }
      const entries = matches.map((id) => raw(selectListed.get(stream, id) as unknown as LogRow));
      return next === undefined ? { entries } : { entries, next };
    },
    async get(stream, id) {
      const row = selectOne.get(stream, id) as LogRow | undefined;
      return row === undefined ? undefined : raw(row);
    },
    update(stream, id, meta) {
      return writes.run(() => Number(updateMeta.run(meta, stream, id).changes) === 1);
    },
    remove(stream, id) {
      return writes.run(() => Number(deleteOne.run(stream, id).changes) === 1);
    },
    async stats(stream) {
      const rows = selectStats.all(stream) as unknown as { partition: string; entries: number; oldest: number | null }[];
      return rows.map((row) => ({ partition: row.partition, entries: Number(row.entries), ...(row.oldest === null ? {} : { oldest: Number(row.oldest) }) }));
    },
    trim(stream, partition, bounds, max) {
      return writes.run(() => trimNow(stream, partition, bounds, max));
    },
  };

  function trimNow(stream: string, partition: string, bounds: { below?: string; keep?: number }, max: number): number {
    if (bounds.below === undefined && bounds.keep === undefined) return Number(deleteOldest.run(stream, partition, HIGHER, max).changes);
    let deleted = 0;
    if (bounds.below !== undefined) deleted += Number(deleteOldest.run(stream, partition, bounds.below, max).changes);
    if (bounds.keep !== undefined && deleted < max) {
      const count = (countOf.get(stream, partition) as { entries: number } | undefined)?.entries ?? 0;
      const excess = Math.min(count - bounds.keep, max - deleted);
      if (excess > 0) deleted += Number(deleteOldest.run(stream, partition, HIGHER, excess).changes);
    }
    return deleted;
  }
}

function migrate(db: DatabaseSync, path: string): void {
  const pragma = (name: string): number => Number((db.prepare(`PRAGMA ${name}`).get() as Record<string, number>)[name]);
  const check = (): number => {
    const applicationId = pragma('application_id');
    const version = pragma('user_version');
    const foreign =
      applicationId !== APPLICATION_ID &&
      (applicationId !== 0 || db.prepare("SELECT 1 FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' LIMIT 1").get() !== undefined);
    if (foreign) throw new Error(`${path} is not a Breakwater state file: it holds another program's data; point path at a file of its own`);
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `${path} has schema version ${version}, and this Breakwater knows versions up to ${SCHEMA_VERSION}: it was written by a newer Breakwater; run that version or point path at another file`,
      );
    }
    return version;
  };
  if (check() === SCHEMA_VERSION) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    // Read again under the write lock: another process may have migrated the file meanwhile.
    for (let version = check(); version < SCHEMA_VERSION; version++) db.exec(MIGRATIONS[version]!);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}; PRAGMA application_id = ${APPLICATION_ID};`);
    db.exec('COMMIT');
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

// SQLite's primary result codes (the low byte of the extended code).
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_UNUSABLE = new Set([
  8, // READONLY
  10, // IOERR
  11, // CORRUPT
  13, // FULL
  14, // CANTOPEN
  26, // NOTADB
]);

function classifySqliteError(error: unknown): StoreErrorCode {
  const errcode = (error as { errcode?: unknown }).errcode;
  if (typeof errcode !== 'number') return 'failed';
  const primary = errcode & 0xff;
  if (primary === SQLITE_BUSY || primary === SQLITE_LOCKED) return 'timeout';
  return SQLITE_UNUSABLE.has(primary) ? 'unavailable' : 'failed';
}
