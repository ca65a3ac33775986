// The memory store: records in this process, in an LRU bounded by entries and by bytes, lost
// on restart (for tests, demos and single replicas). Every step runs synchronously, so each is
// atomic without locks. Under memory pressure the least recently used records go first, an
// in-progress one included: a memory store de-duplicates on a best-effort basis. A record
// larger than the whole store is refused (too_large); a replace refused so leaves the key free.
// Logs have a bound of their own, the same entries and bytes again: a log never evicts (a dead
// letter pushed out by newer ones would be lost without a trace), so a full log refuses
// appends (too_large) until entries are removed or trimmed.

import { LRUCache } from 'lru-cache';
import type { MemoryStoreConfig } from '../config/types.ts';
import type { Clock } from '../runtime/clock.ts';
import type { ImmediateRecordSteps, LogBackend, RecordBackend } from './guard.ts';
import { inRange, tagsMatch } from './log.ts';
import type { EncodedLogEntry, LogRange, RawLogEntry } from './log.ts';
import type { EncodedRecord, RawRecord } from './records.ts';
import type { StoreErrorCode } from './store.ts';

/** A record larger than the whole store, or a log entry that does not fit in what is left of it. */
class RecordTooLarge extends Error {}

interface MemoryLogEntry {
  readonly entry: EncodedLogEntry;
  readonly tags: Readonly<Record<string, string>>;
  meta: string;
  readonly bytes: number;
}

interface MemoryStream {
  readonly entries: Map<string, MemoryLogEntry>;
  /** Every id, in order. */
  readonly ids: string[];
  /** Each partition's ids, in order. */
  readonly partitions: Map<string, string[]>;
}

/** Where `id` sits in the sorted `ids`: its index, or where it would be inserted. */
function position(ids: readonly string[], id: string): number {
  let low = 0;
  let high = ids.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (ids[middle]! < id) low = middle + 1;
    else high = middle;
  }
  return low;
}

function insertSorted(ids: string[], id: string): void {
  // Ids are made in order, so this is almost always an append.
  if (ids.length === 0 || ids[ids.length - 1]! < id) ids.push(id);
  else ids.splice(position(ids, id), 0, id);
}

function removeSorted(ids: string[], id: string): void {
  const at = position(ids, id);
  if (ids[at] === id) ids.splice(at, 1);
}

/** Logs in this process, bounded by `maxEntries` entries and `maxBytes` bytes over every stream. */
function memoryLog(config: Pick<MemoryStoreConfig, 'maxEntries' | 'maxBytes'>): LogBackend & { clear(): void } {
  const streams = new Map<string, MemoryStream>();
  let entries = 0;
  let bytes = 0;

  const streamOf = (name: string): MemoryStream => {
    let stream = streams.get(name);
    if (stream === undefined) {
      stream = { entries: new Map(), ids: [], partitions: new Map() };
      streams.set(name, stream);
    }
    return stream;
  };
  const raw = (stored: MemoryLogEntry, withBody: boolean): RawLogEntry => ({
    id: stored.entry.id,
    time: stored.entry.time,
    partition: stored.entry.partition,
    tags: stored.entry.tags,
    meta: stored.meta,
    body: withBody ? stored.entry.body : undefined,
  });
  const drop = (stream: MemoryStream, id: string): boolean => {
    const stored = stream.entries.get(id);
    if (stored === undefined) return false;
    stream.entries.delete(id);
    removeSorted(stream.ids, id);
    const partition = stream.partitions.get(stored.entry.partition);
    if (partition !== undefined) {
      removeSorted(partition, id);
      if (partition.length === 0) stream.partitions.delete(stored.entry.partition);
    }
    entries -= 1;
    bytes -= stored.bytes;
    return true;
  };

  return {
    async append(name, entry, maxEntries) {
      const stream = streamOf(name);
      const partition = stream.partitions.get(entry.partition) ?? [];
      if (partition.length >= maxEntries) return false;
      const size = entry.id.length + entry.partition.length + entry.tags.length + Buffer.byteLength(entry.meta) + (entry.body?.byteLength ?? 0);
      if (entries + 1 > config.maxEntries || bytes + size > config.maxBytes) {
        throw new RecordTooLarge(`the memory store's logs are full (${config.maxEntries} entries, ${config.maxBytes} bytes at most)`);
      }
      stream.entries.set(entry.id, { entry, tags: JSON.parse(entry.tags) as Record<string, string>, meta: entry.meta, bytes: size });
      insertSorted(stream.ids, entry.id);
      insertSorted(partition, entry.id);
      stream.partitions.set(entry.partition, partition);
      entries += 1;
      bytes += size;
      return true;
    },
    async list(name, range: LogRange) {
      const stream = streams.get(name);
      const ids = range.partition === undefined ? stream?.ids : stream?.partitions.get(range.partition);
      if (stream === undefined || ids === undefined) return { entries: [] };
      const found: RawLogEntry[] = [];
      const newest = range.order === 'newest';
      const step = newest ? -1 : 1;
      const at = (id: string): { index: number; found: boolean } => {
        const index = position(ids, id);
        return { index, found: ids[index] === id };
      };
      let index: number;
      if (newest) {
        // The last id at or below `high`, and below `after`.
        const high = at(range.high);
        index = high.found ? high.index : high.index - 1;
        if (range.after !== undefined) index = Math.min(index, at(range.after).index - 1);
      } else {
        // The first id at or above `low`, and above `after`.
        index = at(range.low).index;
        if (range.after !== undefined) {
          const after = at(range.after);
          index = Math.max(index, after.found ? after.index + 1 : after.index);
        }
      }
      let looked = 0;
      for (; index >= 0 && index < ids.length; index += step) {
        const id = ids[index]!;
        if (!inRange(id, range)) break;
        // Looked far enough for one call: the next page goes on after the last entry looked at.
        if (looked === range.scan) return { entries: found, next: ids[index - step]! };
        looked += 1;
        const stored = stream.entries.get(id)!;
        if (!tagsMatch(stored.tags, range.tags)) continue;
        found.push(raw(stored, false));
        if (found.length === range.limit) {
          const more = ids[index + step];
          return more !== undefined && inRange(more, range) ? { entries: found, next: id } : { entries: found };
        }
      }
      return { entries: found };
    },
    async get(name, id) {
      const stored = streams.get(name)?.entries.get(id);
      return stored === undefined ? undefined : raw(stored, true);
    },
    async update(name, id, meta) {
      const stored = streams.get(name)?.entries.get(id);
      if (stored === undefined) return false;
      const grown = Buffer.byteLength(meta) - Buffer.byteLength(stored.meta);
      if (bytes + grown > config.maxBytes) throw new RecordTooLarge(`the memory store's logs are full (${config.maxBytes} bytes at most)`);
      stored.meta = meta;
      bytes += grown;
      return true;
    },
    async remove(name, id) {
      const stream = streams.get(name);
      return stream === undefined ? false : drop(stream, id);
    },
    async stats(name) {
      const stream = streams.get(name);
      if (stream === undefined) return [];
      return [...stream.partitions].map(([partition, ids]) => ({ partition, entries: ids.length, oldest: stream.entries.get(ids[0]!)!.entry.time }));
    },
    async trim(name, partitionName, bounds, max) {
      const stream = streams.get(name);
      const ids = stream?.partitions.get(partitionName);
      if (stream === undefined || ids === undefined) return 0;
      const all = bounds.below === undefined && bounds.keep === undefined;
      const beyondKeep = bounds.keep === undefined ? 0 : Math.max(0, ids.length - bounds.keep);
      // The doomed are a prefix of the partition: the oldest entries.
      let doomed = 0;
      while (doomed < ids.length && (all || doomed < beyondKeep || (bounds.below !== undefined && ids[doomed]! < bounds.below))) doomed += 1;
      const victims = ids.slice(0, Math.min(doomed, max));
      for (const id of victims) drop(stream, id);
      return victims.length;
    },
    clear() {
      streams.clear();
      entries = 0;
      bytes = 0;
    },
  };
}

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
  const log = memoryLog(config);

  const immediate: ImmediateRecordSteps = {
    take(key, record, ttlMs) {
      const current = live(key);
      if (current !== undefined) return raw(current);
      write(key, record, ttlMs);
      return undefined;
    },
    replace(key, record, ttlMs) {
      if (live(key)?.token !== record.token) return false;
      write(key, record, ttlMs);
      return true;
    },
    release(key, token) {
      if (live(key)?.token !== token) return false;
      return cache.delete(key);
    },
    get(key) {
      const current = live(key);
      return current === undefined ? undefined : raw(current);
    },
  };

  return {
    take: async (key, record, ttlMs) => immediate.take(key, record, ttlMs),
    replace: async (key, record, ttlMs) => immediate.replace(key, record, ttlMs),
    release: async (key, token) => immediate.release(key, token),
    get: async (key) => immediate.get(key),
    immediate,
    log,
    settlesAtOnce: true,
    classify(error): StoreErrorCode {
      return error instanceof RecordTooLarge ? 'too_large' : 'failed';
    },
    async close() {
      cache.clear();
      log.clear();
    },
  };
}
