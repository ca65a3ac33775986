// The Redis side of the record steps: how a record key is built, and the Lua scripts that make
// take, replace and release one atomic step each, so that two Breakwater replicas never both
// win a key (a script runs alone on the server, as one command does).
//
// A record is one hash, {token, meta, body}, with the record's TTL as the key's expiry; an
// expired key is gone for every command, which is what "expired counts as absent" asks.

import type { CommandParser, RedisArgument } from '@redis/client';
import { defineScript } from '@redis/client';

// Record keys live under their own word, so that other kinds of state (dead letters) can share
// the prefix without clashing.
const RECORD_NAMESPACE = 'rec:';

/**
 * The Redis key of a record: the prefix, then the caller's key in a hash tag, so that Redis
 * Cluster hashes only the caller's key and every key ever kept for one record shares a slot.
 * Braces and `%` in the caller's key are percent-encoded, so that they cannot end the tag early.
 */
export function recordKey(prefix: string, key: string): string {
  const tag = key.replace(/[%{}]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${prefix}${RECORD_NAMESPACE}{${tag}}`;
}

// KEYS[1] record; ARGV token, meta, ttl ms[, body]. Returns the live record's {meta, body}, or
// nil after writing the new one.
const TAKE = `
local current = redis.call('HMGET', KEYS[1], 'meta', 'body')
if current[1] then return current end
if ARGV[4] then
  redis.call('HSET', KEYS[1], 'token', ARGV[1], 'meta', ARGV[2], 'body', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'token', ARGV[1], 'meta', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return false
`;

// KEYS[1] record; ARGV token, meta, ttl ms[, body]. 1 if the token owned the record and it was
// overwritten, else 0.
const REPLACE = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'body')
if ARGV[4] then
  redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'body', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'meta', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

// KEYS[1] record; ARGV token. 1 if the token owned the record and it was deleted, else 0.
const RELEASE = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`;

// The replies are checked where they are read (redis.ts), so the library's reply types are
// left open here.
const reply = undefined as unknown as () => unknown;

function pushWrite(parser: CommandParser, key: RedisArgument, token: RedisArgument, meta: RedisArgument, ttlMs: number, body?: RedisArgument): void {
  parser.pushKey(key);
  parser.push(token, meta, String(ttlMs));
  if (body !== undefined) parser.push(body);
}

/**
 * The scripts, for the client's `scripts` option: the client sends EVALSHA and falls back to
 * EVAL when the server does not know the script yet (a restart, a failover, a new node).
 */
export const RECORD_SCRIPTS = {
  breakwaterTake: defineScript({ SCRIPT: TAKE, NUMBER_OF_KEYS: 1, parseCommand: pushWrite, transformReply: reply }),
  breakwaterReplace: defineScript({ SCRIPT: REPLACE, NUMBER_OF_KEYS: 1, parseCommand: pushWrite, transformReply: reply }),
  breakwaterRelease: defineScript({
    SCRIPT: RELEASE,
    NUMBER_OF_KEYS: 1,
    parseCommand(parser: CommandParser, key: RedisArgument, token: RedisArgument) {
      parser.pushKey(key);
      parser.push(token);
    },
    transformReply: reply,
  }),
};

// Logs. A log is a hash per entry and sorted sets of ids (all of them, and one per partition),
// every member scored 0 so that the sets order ids as text, which is the order they were
// appended. A sorted set rather than a Stream: entries are refused, not evicted, when a
// partition is full (XADD's MAXLEN drops the oldest), an entry's meta changes as it is
// replayed (stream entries cannot change), and a partition's count and oldest entry are one
// command each. Every key of one log shares a hash tag, the log's name, so that a script that
// touches several of them runs on one Redis Cluster slot.
const LOG_NAMESPACE = 'log:';

/** The Redis keys of one log. */
export interface LogKeys {
  /** Every id of the log. */
  readonly all: string;
  /** The names of the partitions that hold entries. */
  readonly partitions: string;
  /** Prefix of a partition's sorted set of ids; the partition's name follows. */
  readonly partitionPrefix: string;
  /** Prefix of an entry's hash; the entry's id follows. */
  readonly entryPrefix: string;
}

export function logKeys(prefix: string, stream: string): LogKeys {
  const tag = stream.replace(/[%{}]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
  const base = `${prefix}${LOG_NAMESPACE}{${tag}}`;
  return { all: `${base}:all`, partitions: `${base}:parts`, partitionPrefix: `${base}:p:`, entryPrefix: `${base}:e:` };
}

// KEYS all, partition, partitions, entry; ARGV id, partition, time, tags, meta, maxEntries[, body].
// 1 when appended, 0 when the partition is full.
const LOG_APPEND = `
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return 0 end
if ARGV[7] then
  redis.call('HSET', KEYS[4], 'partition', ARGV[2], 'time', ARGV[3], 'tags', ARGV[4], 'meta', ARGV[5], 'body', ARGV[7])
else
  redis.call('HSET', KEYS[4], 'partition', ARGV[2], 'time', ARGV[3], 'tags', ARGV[4], 'meta', ARGV[5])
end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
`;

// KEYS entry; ARGV meta. 1 when the entry exists and was updated.
const LOG_UPDATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[1])
return 1
`;

// The keys below that a script builds from a prefix share the hash tag of the keys it was
// given, so they live on the same Cluster slot.

// KEYS all, partitions, entry; ARGV id, partition key prefix. 1 when the entry existed.
const LOG_REMOVE = `
local partition = redis.call('HGET', KEYS[3], 'partition')
if not partition then return 0 end
local ids = ARGV[2] .. partition
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', ids, ARGV[1])
if redis.call('ZCARD', ids) == 0 then redis.call('SREM', KEYS[2], partition) end
return 1
`;

// KEYS all, partition, partitions; ARGV below ('' = none), keep ('' = none), max, entry key
// prefix, partition name. Deletes the oldest entries: those below the id bound, and those
// beyond the newest keep (all with neither), at most max. Returns how many.
const LOG_TRIM = `
local max = tonumber(ARGV[3])
local ids
if ARGV[1] == '' and ARGV[2] == '' then
  ids = redis.call('ZRANGE', KEYS[2], 0, max - 1)
else
  ids = {}
  if ARGV[1] ~= '' then ids = redis.call('ZRANGEBYLEX', KEYS[2], '-', '(' .. ARGV[1], 'LIMIT', 0, max) end
  if ARGV[2] ~= '' then
    local excess = math.min(redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[2]), max)
    if excess > #ids then ids = redis.call('ZRANGE', KEYS[2], 0, excess - 1) end
  end
end
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[4] .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[5]) end
return #ids
`;

// KEYS partitions; ARGV partition key prefix, entry key prefix. Returns a flat list of
// partition, count, time of its oldest entry.
const LOG_STATS = `
local out = {}
for _, partition in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local ids = ARGV[1] .. partition
  local count = redis.call('ZCARD', ids)
  if count > 0 then
    local oldest = redis.call('ZRANGE', ids, 0, 0)[1]
    table.insert(out, partition)
    table.insert(out, count)
    table.insert(out, redis.call('HGET', ARGV[2] .. oldest, 'time') or '')
  end
end
return out
`;

// KEYS the sorted set of ids to list (all, or a partition's); ARGV order ('newest' or
// 'oldest'), start bound, end bound (ZRANGEBYLEX syntax, in the listing's direction), limit,
// scan, entry key prefix, then tag name and value pairs. Returns {entries, next}: entries a
// flat list of id, partition, time, tags, meta; next the id to go on after, or false at the end.
const LOG_LIST = `
local newest = ARGV[1] == 'newest'
local from, to = ARGV[2], ARGV[3]
local limit, scan = tonumber(ARGV[4]), tonumber(ARGV[5])
local prefix = ARGV[6]
local wanted = {}
local filtered = false
for i = 7, #ARGV, 2 do
  wanted[ARGV[i]] = ARGV[i + 1]
  filtered = true
end
local out, found, looked, last, lastFound = {}, 0, 0, nil, nil
while true do
  local batch = math.min(100, scan - looked)
  -- Looked far enough for one call: go on after the last entry looked at.
  if batch <= 0 then return {out, lastFound and found == limit and lastFound or last} end
  local ids
  if newest then
    ids = redis.call('ZREVRANGEBYLEX', KEYS[1], from, to, 'LIMIT', 0, batch)
  else
    ids = redis.call('ZRANGEBYLEX', KEYS[1], from, to, 'LIMIT', 0, batch)
  end
  if #ids == 0 then return {out, false} end
  for _, id in ipairs(ids) do
    looked = looked + 1
    local fields = redis.call('HMGET', prefix .. id, 'partition', 'time', 'tags', 'meta')
    local match = fields[1] ~= false
    if match and filtered then
      local tags = cjson.decode(fields[3])
      for name, value in pairs(wanted) do
        if tags[name] ~= value then match = false end
      end
    end
    if match then
      -- One more match than a page holds: another page follows.
      if found == limit then return {out, lastFound} end
      found = found + 1
      lastFound = id
      table.insert(out, id)
      table.insert(out, fields[1])
      table.insert(out, fields[2])
      table.insert(out, fields[3])
      table.insert(out, fields[4])
    end
    last = id
  end
  from = '(' .. last
end
`;

function pushKeysAndArgs(parser: CommandParser, keys: readonly RedisArgument[], args: readonly RedisArgument[]): void {
  for (const key of keys) parser.pushKey(key);
  parser.push(...args);
}

const keysAndArgs = (count: number) => ({
  NUMBER_OF_KEYS: count,
  parseCommand: (parser: CommandParser, keys: readonly RedisArgument[], args: readonly RedisArgument[]) => pushKeysAndArgs(parser, keys, args),
  transformReply: reply,
});

/** The log scripts, for the client's `scripts` option; each takes its keys and its arguments as two lists. */
export const LOG_SCRIPTS = {
  breakwaterLogAppend: defineScript({ SCRIPT: LOG_APPEND, ...keysAndArgs(4) }),
  breakwaterLogUpdate: defineScript({ SCRIPT: LOG_UPDATE, ...keysAndArgs(1) }),
  breakwaterLogRemove: defineScript({ SCRIPT: LOG_REMOVE, ...keysAndArgs(3) }),
  breakwaterLogTrim: defineScript({ SCRIPT: LOG_TRIM, ...keysAndArgs(3) }),
  breakwaterLogStats: defineScript({ SCRIPT: LOG_STATS, ...keysAndArgs(1) }),
  breakwaterLogList: defineScript({ SCRIPT: LOG_LIST, ...keysAndArgs(1) }),
};
