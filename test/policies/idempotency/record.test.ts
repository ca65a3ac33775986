import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { asMeta, classifyDuplicate, fingerprint, isStorable, recordKey, type IdempotencyMeta } from '../../../src/policies/idempotency/record.ts';

describe('the request fingerprint', () => {
  it('covers the method, the path with its query, and the body', () => {
    const base = fingerprint('POST', '/charge?currency=EUR', Buffer.from('{"amount":42}'));
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(fingerprint('post', '/charge?currency=EUR', Buffer.from('{"amount":42}'))).toBe(base);
    expect(fingerprint('PATCH', '/charge?currency=EUR', Buffer.from('{"amount":42}'))).not.toBe(base);
    expect(fingerprint('POST', '/charge?currency=USD', Buffer.from('{"amount":42}'))).not.toBe(base);
    expect(fingerprint('POST', '/charge?currency=EUR', Buffer.from('{"amount":43}'))).not.toBe(base);
    expect(fingerprint('POST', '/charge?currency=EUR', null)).toBe(fingerprint('POST', '/charge?currency=EUR', Buffer.alloc(0)));
  });

  it('stays the one earlier versions stored, whatever the size of the body', () => {
    // Records outlive an upgrade in sqlite and Redis: a repeat must still match them. The
    // layout is "METHOD\npath\nbody", hashed here by coreutils rather than by Node.
    const sha256 = (bytes: Buffer): string => execFileSync('sha256sum', { input: bytes }).toString().slice(0, 64);
    const small = Buffer.from('{"amount":42}');
    expect(fingerprint('post', '/charge?currency=EUR', small)).toBe(sha256(Buffer.concat([Buffer.from('POST\n/charge?currency=EUR\n'), small])));
    expect(fingerprint('POST', '/charge', null)).toBe(sha256(Buffer.from('POST\n/charge\n')));
    const large = Buffer.alloc(200 * 1024, 'ab');
    expect(fingerprint('PATCH', '/é', large)).toBe(sha256(Buffer.concat([Buffer.from('PATCH\n/é\n'), large])));
  });

  it('cannot be made equal by moving bytes between path and body', () => {
    expect(fingerprint('POST', '/a', Buffer.from('b'))).not.toBe(fingerprint('POST', '/ab', null));
  });
});

describe('the record key', () => {
  it('keeps the keys of two routes apart, however their names and keys are cut', () => {
    expect(recordKey('charge', 'k1')).not.toBe(recordKey('refund', 'k1'));
    expect(recordKey('a:b', 'c')).not.toBe(recordKey('a', 'b:c'));
  });
});

describe('a duplicate', () => {
  const completed: IdempotencyMeta = { state: 'completed', fingerprint: 'f1', status: 201, headers: { 'content-type': 'application/json' } };

  it('is a mismatch when the key was first used for another request, whatever its state', () => {
    expect(classifyDuplicate(completed, 'f2')).toEqual({ kind: 'mismatch' });
    expect(classifyDuplicate({ state: 'in-progress', fingerprint: 'f1' }, 'f2')).toEqual({ kind: 'mismatch' });
  });

  it('waits on a first request still in progress, and replays a finished one', () => {
    expect(classifyDuplicate({ state: 'in-progress', fingerprint: 'f1' }, 'f1')).toEqual({ kind: 'in-progress' });
    expect(classifyDuplicate(completed, 'f1')).toEqual({ kind: 'completed', meta: completed });
  });

  it('reads back only records this version wrote', () => {
    expect(asMeta(completed)).toEqual(completed);
    expect(asMeta({ state: 'in-progress', fingerprint: 'f1' })).toEqual({ state: 'in-progress', fingerprint: 'f1' });
    expect(asMeta({ state: 'completed', fingerprint: 'f1' })).toBeUndefined();
    expect(asMeta({ state: 'other', fingerprint: 'f1' })).toBeUndefined();
    expect(asMeta(null)).toBeUndefined();
    expect(asMeta('text')).toBeUndefined();
  });
});

describe('what is kept for duplicates', () => {
  it("is a final answer below 500 that the upstream gave, not Breakwater's own or a 5xx", () => {
    expect(isStorable(201, false)).toBe(true);
    expect(isStorable(404, false)).toBe(true);
    expect(isStorable(500, false)).toBe(false);
    expect(isStorable(503, false)).toBe(false);
    expect(isStorable(200, true)).toBe(false);
  });
});
