import { describe, expect, it } from 'vitest';
import { callerBudgetMs, parseBudgetHeader, parseGrpcTimeout, parseMillis } from '../../../src/policies/deadline/budget.ts';

const accept = ['x-request-timeout-ms', 'grpc-timeout', 'x-envoy-expected-rq-timeout-ms'];

describe('grpc-timeout', () => {
  it('parses every unit exactly', () => {
    expect(parseGrpcTimeout('2H')).toBe(2 * 60 * 60 * 1000);
    expect(parseGrpcTimeout('3M')).toBe(3 * 60 * 1000);
    expect(parseGrpcTimeout('4S')).toBe(4000);
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('1500u')).toBe(1.5);
    expect(parseGrpcTimeout('2000000n')).toBe(2);
  });

  it('accepts up to 8 digits and refuses anything else', () => {
    expect(parseGrpcTimeout('99999999m')).toBe(99_999_999);
    expect(parseGrpcTimeout('123456789m')).toBeUndefined();
    expect(parseGrpcTimeout('10')).toBeUndefined();
    expect(parseGrpcTimeout('10ms')).toBeUndefined();
    expect(parseGrpcTimeout('-1S')).toBeUndefined();
    expect(parseGrpcTimeout('1.5S')).toBeUndefined();
    expect(parseGrpcTimeout('S')).toBeUndefined();
    expect(parseGrpcTimeout('10s')).toBeUndefined();
  });
});

describe('millisecond headers', () => {
  it('parses non-negative numbers and refuses the rest', () => {
    expect(parseMillis('250')).toBe(250);
    expect(parseMillis(' 0 ')).toBe(0);
    expect(parseMillis('12.5')).toBe(12.5);
    expect(parseMillis('-5')).toBeUndefined();
    expect(parseMillis('1e3')).toBeUndefined();
    expect(parseMillis('')).toBeUndefined();
  });

  it('reads the first value of a repeated header', () => {
    expect(parseBudgetHeader('x-request-timeout-ms', ['100', '900'])).toBe(100);
    expect(parseBudgetHeader('grpc-timeout', '5S')).toBe(5000);
    expect(parseBudgetHeader('x-request-timeout-ms', undefined)).toBeUndefined();
    expect(parseBudgetHeader('x-request-timeout-ms', [])).toBeUndefined();
  });
});

describe("the caller's budget", () => {
  it('is the smallest valid value among the accepted headers', () => {
    expect(callerBudgetMs({ 'x-request-timeout-ms': '900', 'grpc-timeout': '300m' }, accept, 60_000)).toBe(300);
    expect(callerBudgetMs({ 'x-envoy-expected-rq-timeout-ms': '120', 'x-request-timeout-ms': 'soon' }, accept, 60_000)).toBe(120);
  });

  it('is capped at maxInbound', () => {
    expect(callerBudgetMs({ 'grpc-timeout': '2H' }, accept, 60_000)).toBe(60_000);
  });

  it('ignores headers that are not accepted, and is absent when none is sent', () => {
    expect(callerBudgetMs({ 'x-other-timeout': '5' }, accept, 60_000)).toBeUndefined();
    expect(callerBudgetMs({ 'grpc-timeout': '5m' }, ['x-request-timeout-ms'], 60_000)).toBeUndefined();
  });
});
