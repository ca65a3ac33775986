// The memory store: records in this process, in an LRU bounded by entries and by bytes, lost
// on restart (for tests, demos and single replicas). Every step runs synchronously, so each is
// atomic without locks. Under memory pressure the least recently used records go first, an
// in-progress one included: a memory store de-duplicates on a best-effort basis. A record
// larger than the whole store is refused (too_large); a replace refused so leaves the key free.

import { LRUCache } from 'lru-cache';
import type { MemoryStoreConfig } from '../config/types.ts';
import type { Clock } from '../runtime/clock.ts';
import type { RecordBackend } from './guard.ts';
import type { EncodedRecord, RawRecord } from './records.ts';
import type { StoreErrorCode } from './store.ts';

/** A record larger than the whole store. */
class RecordTooLarge extends Error {}

export function memoryBackend(config: Pick<MemoryStoreConfig, 'maxEntries' | 'maxBytes'>, clock: Clock): RecordBackend {
  const cache = new LRUCache<string, EncodedRecord>({
    max: config.maxEntries,
    maxSize: config.maxBytes,
    sizeCalculation: (record, key) =>
      Buffer.byteLength(key) + record.token.length + Buffer.byteLength(record.meta) + (record.body?.byteLength ?? 0),
    // TTLs run on the injected clock, read on every check: the clock is this project's one
    // source of time, and a cached reading would need lru-cache's own timer.
    perf: { now: () => clock.now() },
    ttlResolution: 0,
  });

  const live = (key: string): EncodedRecord | undefined => cache.get(key);

  const write = (key: string, record: EncodedRecord, ttlMs: number): void => {
    const status: LRUCache.Status<string, EncodedRecord> = {};
    cache.set(key, record, { ttl: ttlMs, status });
    if (status.maxEntrySizeExceeded) throw new RecordTooLarge(`a record of ${status.entrySize ?? '?'} bytes is larger than the store (${config.maxBytes} bytes)`);
  };

  const raw = (record: EncodedRecord): RawRecord => ({ meta: record.meta, body: record.body });

  return {
    async take(key, record, ttlMs) {
      const current = live(key);
      if (current !== undefined) return raw(current);
      write(key, record, ttlMs);
      return undefined;
    },
    async replace(key, record, ttlMs) {
      if (live(key)?.token !== record.token) return false;
      write(key, record, ttlMs);
      return true;
    },
    async release(key, token) {
      if (live(key)?.token !== token) return false;
      return cache.delete(key);
    },
    async get(key) {
      const current = live(key);
      return current === undefined ? undefined : raw(current);
    },
    classify(error): StoreErrorCode {
      return error instanceof RecordTooLarge ? 'too_large' : 'failed';
    },
    async close() {
      cache.clear();
    },
  };
}
