import { describe, expect, it } from 'vitest';
import { localReasons, type LocalReason } from '../../src/exchange/errors.ts';
import {
  encodeGrpcMessage,
  formatGrpcTimeout,
  grpcMethodOf,
  grpcStatusIn,
  grpcStatusOfHttp,
  grpcStatusOfReason,
  isGrpcContentType,
} from '../../src/exchange/grpc.ts';
import { parseGrpcTimeout } from '../../src/policies/deadline/budget.ts';

describe('which requests are gRPC calls', () => {
  it('takes application/grpc and its +format and parameter forms, in any case', () => {
    for (const value of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc;charset=utf-8', 'Application/GRPC'])
      expect(isGrpcContentType(value)).toBe(true);
  });

  it('leaves other content types, and look-alikes, as plain HTTP', () => {
    for (const value of [undefined, '', 'application/json', 'application/grpc-web', 'application/grpc-web+proto', 'application/grpcx', ['application/grpc']])
      expect(isGrpcContentType(value as string | undefined)).toBe(false);
  });
});

describe('reading grpc-status', () => {
  it('reads a status from headers or trailers', () => {
    expect(grpcStatusIn({ 'grpc-status': '14' })).toBe(14);
    expect(grpcStatusIn({ 'grpc-status': ['0'] })).toBe(0);
  });

  it('has none for a missing or malformed value', () => {
    expect(grpcStatusIn({})).toBeUndefined();
    expect(grpcStatusIn(undefined)).toBeUndefined();
    expect(grpcStatusIn({ 'grpc-status': 'UNAVAILABLE' })).toBeUndefined();
    expect(grpcStatusIn({ 'grpc-status': '-1' })).toBeUndefined();
  });

  it('maps an HTTP status without grpc-status as gRPC clients do', () => {
    expect([400, 401, 403, 404, 429, 502, 503, 504, 500, 418].map(grpcStatusOfHttp)).toEqual([13, 16, 7, 12, 14, 14, 14, 14, 2, 2]);
  });
});

describe("the status of Breakwater's own replies", () => {
  it('follows the contract: an expired deadline or timeout is DEADLINE_EXCEEDED, never UNAVAILABLE', () => {
    const of = (reason: LocalReason): number => grpcStatusOfReason(reason, localReasons[reason].status);
    expect(of('deadline_exceeded')).toBe(4);
    expect(of('timeout')).toBe(4);
    expect([of('circuit_open'), of('bulkhead_full'), of('upstream_unavailable')]).toEqual([14, 14, 14]);
    expect(of('no_route')).toBe(12);
    expect(of('payload_too_large')).toBe(8);
  });

  it('gives every other reason the gRPC status of its HTTP status', () => {
    expect(grpcStatusOfReason('bad_request', 400)).toBe(13);
    expect(grpcStatusOfReason('idempotency_key_reused', 422)).toBe(2);
  });
});

describe('grpc-message', () => {
  it('percent-encodes everything outside printable ASCII, and % itself', () => {
    expect(encodeGrpcMessage('plain text: ok')).toBe('plain text: ok');
    expect(encodeGrpcMessage('50% done\nnext')).toBe('50%25 done%0Anext');
    expect(encodeGrpcMessage('café')).toBe('caf%C3%A9');
  });
});

describe('grpc-timeout', () => {
  it('writes milliseconds while they fit in 8 digits, then coarser units, rounded down', () => {
    expect(formatGrpcTimeout(1500.9)).toBe('1500m');
    expect(formatGrpcTimeout(-3)).toBe('0m');
    expect(formatGrpcTimeout(99_999_999)).toBe('99999999m');
    expect(formatGrpcTimeout(100_000_000)).toBe('100000S');
    expect(formatGrpcTimeout(1e15)).toBe('99999999H');
  });

  it('is read back, as a caller budget, to at most the time it was written for', () => {
    for (const ms of [0, 1, 999, 1000, 86_400_000, 123_456_789_012]) {
      const read = parseGrpcTimeout(formatGrpcTimeout(ms))!;
      expect(read).toBeLessThanOrEqual(ms);
      expect(read).toBeGreaterThan(ms - 3_600_000 - 1);
    }
  });
});

describe('the method of a call', () => {
  it('splits /package.Service/Method', () => {
    expect(grpcMethodOf('/test.Echo/Unary')).toEqual({ service: 'test.Echo', method: 'Unary' });
    expect(grpcMethodOf('/grpc.health.v1.Health/Check?x=1')).toEqual({ service: 'grpc.health.v1.Health', method: 'Check' });
  });

  it('has none for a path of another shape', () => {
    for (const path of ['/', '/only', '/a/b/c', '/svc/', 'svc/Method']) expect(grpcMethodOf(path)).toBeUndefined();
  });
});
