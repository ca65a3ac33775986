// What an idempotency record holds, and the decisions that depend on it alone. Pure: the layer
// (src/policies/idempotency/layer.ts) reads and writes records through a store.

import { createHash, hash } from 'node:crypto';

// Up to this size the method, path and body are copied into one buffer and hashed in one call,
// which costs less than a Hash object; a larger body is hashed where it lies.
const oneShotBytes = 64 * 1024;

/** Fingerprint of a request: SHA-256 over its method, its path with query, and its body bytes. */
export function fingerprint(method: string, path: string, body: Buffer | null): string {
  const head = `${method.toUpperCase()}\n${path}\n`;
  if (body === null) return hash('sha256', head, 'hex');
  if (body.length > oneShotBytes) return createHash('sha256').update(head).update(body).digest('hex');
  const headBytes = Buffer.byteLength(head);
  const bytes = Buffer.allocUnsafe(headBytes + body.length);
  bytes.write(head, 0, 'utf8');
  body.copy(bytes, headBytes);
  return hash('sha256', bytes, 'hex');
}

/** The record key: the route's name and the caller's key, so two routes never share keys. */
export function recordKey(route: string, key: string): string {
  return `${route.length}:${route}:${key}`;
}

/** A record's meta, as stored. */
export type IdempotencyMeta =
  | { readonly state: 'in-progress'; readonly fingerprint: string }
  | {
      readonly state: 'completed';
      readonly fingerprint: string;
      readonly status: number;
      /** The response's end-to-end headers, as the client got them. */
      readonly headers: Readonly<Record<string, string | readonly string[]>>;
    };

/** What a request finds when its key is already taken. */
export type Duplicate =
  /** The key was first used for another request: 422. */
  | { readonly kind: 'mismatch' }
  /** The first request is still running: 409, or wait for it. */
  | { readonly kind: 'in-progress' }
  /** The first request finished: its stored response is replayed. */
  | { readonly kind: 'completed'; readonly meta: Extract<IdempotencyMeta, { state: 'completed' }> };

/** Reads a stored meta; undefined when it is not one this version wrote. */
export function asMeta(meta: unknown): IdempotencyMeta | undefined {
  if (typeof meta !== 'object' || meta === null) return undefined;
  const record = meta as Record<string, unknown>;
  if (typeof record.fingerprint !== 'string') return undefined;
  if (record.state === 'in-progress') return { state: 'in-progress', fingerprint: record.fingerprint };
  if (record.state !== 'completed' || typeof record.status !== 'number' || typeof record.headers !== 'object' || record.headers === null) return undefined;
  return meta as IdempotencyMeta;
}

/** What a request with `requestFingerprint` finds in the record `meta` that holds its key. */
export function classifyDuplicate(meta: IdempotencyMeta, requestFingerprint: string): Duplicate {
  if (meta.fingerprint !== requestFingerprint) return { kind: 'mismatch' };
  return meta.state === 'completed' ? { kind: 'completed', meta } : { kind: 'in-progress' };
}

/**
 * Whether a first request's final response is kept for duplicates: a status below 500 that the
 * upstream gave. A 5xx, a reply Breakwater made itself or a fallback's answer release the key
 * instead, so the caller may retry with it.
 */
export function isStorable(status: number, madeByBreakwater: boolean): boolean {
  return status < 500 && !madeByBreakwater;
}
