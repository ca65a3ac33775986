import { describe, expect, it } from 'vitest';
import { maxKeyLength, parseIdempotencyKey, parseSfString } from '../../../src/policies/idempotency/key.ts';

describe('the Idempotency-Key header', () => {
  it('names the same key quoted as an sf-string or bare', () => {
    expect(parseIdempotencyKey('"8e03978e-40d5"')).toEqual({ kind: 'key', key: '8e03978e-40d5' });
    expect(parseIdempotencyKey('8e03978e-40d5')).toEqual({ kind: 'key', key: '8e03978e-40d5' });
    expect(parseIdempotencyKey(' "8e03978e-40d5" ')).toEqual({ kind: 'key', key: '8e03978e-40d5' });
    expect(parseIdempotencyKey(['"one"'])).toEqual({ kind: 'key', key: 'one' });
  });

  it('is absent when the request has none', () => {
    expect(parseIdempotencyKey(undefined)).toEqual({ kind: 'absent' });
    expect(parseIdempotencyKey([])).toEqual({ kind: 'absent' });
  });

  it('is invalid when empty, repeated, badly quoted or too long', () => {
    expect(parseIdempotencyKey('')).toMatchObject({ kind: 'invalid', why: 'the idempotency key is empty' });
    expect(parseIdempotencyKey('""')).toMatchObject({ kind: 'invalid', why: 'the idempotency key is empty' });
    expect(parseIdempotencyKey(['"a"', '"b"'])).toMatchObject({ kind: 'invalid', why: 'the request carries more than one idempotency key header' });
    expect(parseIdempotencyKey('"unterminated')).toMatchObject({ kind: 'invalid' });
    expect(parseIdempotencyKey('x'.repeat(maxKeyLength))).toEqual({ kind: 'key', key: 'x'.repeat(maxKeyLength) });
    expect(parseIdempotencyKey('x'.repeat(maxKeyLength + 1))).toMatchObject({ kind: 'invalid', why: `the idempotency key is longer than ${maxKeyLength} characters` });
  });
});

describe('sf-string', () => {
  it('unescapes \\" and \\\\ and ignores parameters', () => {
    expect(parseSfString('"a\\"b\\\\c"')).toBe('a"b\\c');
    expect(parseSfString('"abc";v=1')).toBe('abc');
  });

  it('refuses other escapes, control bytes, non-ASCII and text after the closing quote', () => {
    expect(parseSfString('"a\\nb"')).toBeUndefined();
    expect(parseSfString('"a\tb"')).toBeUndefined();
    expect(parseSfString('"café"')).toBeUndefined();
    expect(parseSfString('"abc" x')).toBeUndefined();
    expect(parseSfString('abc')).toBeUndefined();
  });
});
