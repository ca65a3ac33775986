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
