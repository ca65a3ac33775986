// The pure parts every store kind shares: checking what callers pass, turning a record into
// what a backend writes (JSON text and bytes) and back, and owner tokens.

import { randomFillSync } from 'node:crypto';
import type { JsonObject, RecordValue, StoredRecord } from './store.ts';

// Idempotency keys are at most a few hundred bytes (Stripe caps them at 255 characters); a cap
// keeps a misbehaving caller from filling a store's index with huge keys.
export const MAX_KEY_BYTES = 1024;

/** A record as a backend writes it. */
export interface EncodedRecord {
  readonly token: string;
  /** `meta` as JSON text. */
  readonly meta: string;
  readonly body: Uint8Array | undefined;
}

/** A record as a backend reads it: JSON text (or its bytes) and the body bytes, if any. */
export interface RawRecord {
  readonly meta: string | Uint8Array;
  readonly body: Uint8Array | undefined;
}

/** Why a key cannot be stored, or undefined when it can. */
export function keyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key === '') return 'the key must be a non-empty string';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `the key is longer than ${MAX_KEY_BYTES} bytes`;
  return undefined;
}

/** Why a TTL cannot be used, or undefined when it can. */
export function ttlProblem(ttlMs: number): string | undefined {
  return Number.isSafeInteger(ttlMs) && ttlMs > 0 ? undefined : `the TTL must be a positive integer of milliseconds, got ${ttlMs}`;
}

const TOKEN_BYTES = 16;
// Tokens are cut from random bytes drawn a few hundred at a time: one call into the system's
// random source per batch, and one short string per token.
const tokenBytes = Buffer.alloc(TOKEN_BYTES * 256);
let tokenOffset = tokenBytes.length;

/**
 * A new owner token: 128 random bits, unguessable, so that no other taker can finish someone
 * else's record. Only the taker compares it, so its form may change between versions.
 */
export function newToken(): string {
  if (tokenOffset === tokenBytes.length) {
    randomFillSync(tokenBytes);
    tokenOffset = 0;
  }
  const token = tokenBytes.toString('base64url', tokenOffset, tokenOffset + TOKEN_BYTES);
  tokenOffset += TOKEN_BYTES;
  return token;
}

export function encodeRecord(token: string, value: RecordValue): EncodedRecord {
  if (value.meta === null || typeof value.meta !== 'object' || Array.isArray(value.meta)) {
    throw new TypeError('a record\'s meta must be a JSON object');
  }
  return { token, meta: JSON.stringify(value.meta), body: value.body };
}

export function decodeRecord(raw: RawRecord): StoredRecord {
  const text = typeof raw.meta === 'string' ? raw.meta : Buffer.from(raw.meta.buffer, raw.meta.byteOffset, raw.meta.byteLength).toString('utf8');
  const meta = JSON.parse(text) as JsonObject;
  if (raw.body === undefined) return { meta };
  // A view on the bytes read, not a copy: bodies may be a megabyte.
  const body = Buffer.isBuffer(raw.body) ? raw.body : Buffer.from(raw.body.buffer, raw.body.byteOffset, raw.body.byteLength);
  return { meta, body };
}

