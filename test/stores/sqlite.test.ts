// What only the sqlite store does: keep records across a restart, sweep expired rows away in
// the background, and refuse files it must not touch.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SqliteStoreConfig, StoreConfig } from '../../src/config/types.ts';
import { openStore, openStores } from '../../src/stores/open.ts';
import { APPLICATION_ID, SCHEMA_VERSION } from '../../src/stores/sqlite.ts';
import type { StoreEvent } from '../../src/stores/store.ts';
import { FakeClock } from '../support/fake-clock.ts';

let dir: string;
let path: string;
const config = (): SqliteStoreConfig => ({ name: 'local', type: 'sqlite', timeoutMs: 50, path });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakwater-sqlite-'));
  path = join(dir, 'state.db');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Reads the file with a connection of its own, as an operator with the sqlite3 shell would. */
function inspect<T>(query: string): T {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare(query).get() as T;
  } finally {
    db.close();
  }
}

describe('the sqlite store', () => {
  it('keeps records across a close and a reopen of the same file', async () => {
    const clock = new FakeClock();
    const first = openStore(config(), { clock });
    const taken = await first.records.take('charge:k', { meta: { state: 'in-progress' } }, 60_000);
    if (!taken.taken) throw new Error('not taken');
    await first.records.replace('charge:k', taken.token, { meta: { status: 200 }, body: Buffer.from('paid') }, 60_000);
    await first.close();

    // As after a restart: a new process, a new store, the same file.
    const second = openStore(config(), { clock });
    try {
      expect(await second.records.get('charge:k')).toEqual({ meta: { status: 200 }, body: Buffer.from('paid') });
      // The owner token is kept too, so the record is still the taker's to release.
      expect(await second.records.release('charge:k', taken.token)).toBe(true);
    } finally {
      await second.close();
    }
  });

  it('keeps log entries, with their bodies and counts, across a close and a reopen', async () => {
    const clock = new FakeClock();
    const first = openStore(config(), { clock });
    const appended = await first.log.append('dead-letters', { partition: 'notify', tags: { reason: 'timeout' }, meta: { n: 1 }, body: Buffer.from('{"to":"a"}') }, 10);
    if (!appended.appended) throw new Error('not appended');
    await first.close();
    // A restart takes time: ids of the same millisecond from two processes are in no set order.
    clock.advance(1);

    const second = openStore(config(), { clock });
    try {
      expect(await second.log.get('dead-letters', appended.id)).toMatchObject({ meta: { n: 1 }, body: Buffer.from('{"to":"a"}') });
      expect(await second.log.stats('dead-letters')).toEqual([{ partition: 'notify', entries: 1, oldest: appended.time }]);
      // Ids made after the restart sort after the ones made before it.
      const later = await second.log.append('dead-letters', { partition: 'notify', meta: { n: 2 } }, 10);
      if (!later.appended) throw new Error('not appended');
      expect(later.id > appended.id).toBe(true);
    } finally {
      await second.close();
    }
  });

  it('adds the log tables to a file of the first schema version, keeping its records', async () => {
    const db = new DatabaseSync(path);
    db.exec(`CREATE TABLE records (key TEXT PRIMARY KEY, token TEXT NOT NULL, meta TEXT NOT NULL, body BLOB, expires_at INTEGER NOT NULL);
      CREATE INDEX records_by_expiry ON records (expires_at);
      INSERT INTO records VALUES ('k', 't', '{"kept":true}', NULL, 9999999999999);
      PRAGMA user_version = 1; PRAGMA application_id = ${APPLICATION_ID};`);
    db.close();

    const store = openStore(config(), { clock: new FakeClock() });
    try {
      expect(await store.records.get('k')).toEqual({ meta: { kept: true } });
      expect((await store.log.append('s', { partition: 'p', meta: {} }, 1)).appended).toBe(true);
    } finally {
      await store.close();
    }
    expect(inspect<{ user_version: number }>('PRAGMA user_version').user_version).toBe(SCHEMA_VERSION);
  });

  it('writes in WAL mode, with its schema version and application id', async () => {
    const store = openStore(config(), { clock: new FakeClock() });
    await store.close();

    expect(inspect<{ journal_mode: string }>('PRAGMA journal_mode').journal_mode).toBe('wal');
    expect(inspect<{ user_version: number }>('PRAGMA user_version').user_version).toBe(SCHEMA_VERSION);
    expect(inspect<{ application_id: number }>('PRAGMA application_id').application_id).toBe(APPLICATION_ID);
  });

  it('sweeps expired rows away on its timer, and reports each sweep', async () => {
    const clock = new FakeClock();
    const events: StoreEvent[] = [];
    const store = openStore(config(), { clock, events: { emit: (event) => events.push(event) }, sweepIntervalMs: 10_000 });
    try {
      for (let i = 0; i < 1200; i++) await store.records.take(`short:${i}`, { meta: {} }, 1000);
      await store.records.take('long', { meta: {} }, 60_000);
      const rows = (): number => inspect<{ count: number }>('SELECT count(*) AS count FROM records').count;
      expect(rows()).toBe(1201);

      // Expired rows are invisible at once, but still on disk until the sweep.
      clock.advance(5000);
      expect(await store.records.get('short:0')).toBeUndefined();
      expect(rows()).toBe(1201);

      clock.advance(5000);

      expect(rows()).toBe(1);
      expect(await store.records.get('long')).toEqual({ meta: {} });
      expect(events.filter((event) => event.type === 'store-operation' && event.operation === 'sweep')).toEqual([
        { type: 'store-operation', store: 'local', kind: 'sqlite', operation: 'sweep', durationMs: 0 },
      ]);
    } finally {
      await store.close();
    }
    // Closed, the store leaves no timer behind.
    expect(clock.pending).toBe(0);
  });

  it('creates the folder of its file', async () => {
    path = join(dir, 'a', 'b', 'state.db');
    const store = openStore(config(), { clock: new FakeClock() });
    await store.close();

    expect(inspect<{ user_version: number }>('PRAGMA user_version').user_version).toBe(SCHEMA_VERSION);
  });
});

describe('files the sqlite store refuses', () => {
  it('a file written by a newer Breakwater, with both versions named', async () => {
    const db = new DatabaseSync(path);
    db.exec(`PRAGMA application_id = ${APPLICATION_ID}; PRAGMA user_version = ${SCHEMA_VERSION + 1};`);
    db.close();

    expect(() => openStore(config(), { clock: new FakeClock() })).toThrow(
      `cannot open the sqlite store "local" at ${path}: ${path} has schema version ${SCHEMA_VERSION + 1}, and this Breakwater knows versions up to ${SCHEMA_VERSION}: it was written by a newer Breakwater; run that version or point path at another file`,
    );
  });

  it('another program\'s database, left as it was', async () => {
    const db = new DatabaseSync(path);
    db.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY)');
    db.close();

    expect(() => openStore(config(), { clock: new FakeClock() })).toThrow(/is not a Breakwater state file/);
    expect(inspect<{ user_version: number }>('PRAGMA user_version').user_version).toBe(0);
  });

  it('a file that is not a database, when all stores open', async () => {
    await writeFile(path, 'not a database, just text that is long enough to have a header of its own '.repeat(10));

    const opening = openStores(
      new Map<string, StoreConfig>([
        ['scratch', { name: 'scratch', type: 'memory', timeoutMs: 50, maxEntries: 10, maxBytes: 1000 }],
        ['local', config()],
      ]),
      { clock: new FakeClock() },
    );

    await expect(opening).rejects.toMatchObject({ name: 'StoreError', code: 'unavailable', operation: 'open', store: 'local' });
  });
});
