import { describe, expect, it } from 'vitest';
import { h2cPreface, protocolOf } from '../../../src/proxy/preface.ts';

describe('telling h2c from HTTP/1.1 by the first bytes', () => {
  it('is h2c once the whole preface is there', () => {
    expect(protocolOf(h2cPreface)).toBe('h2c');
    expect(protocolOf(Buffer.concat([h2cPreface, Buffer.from([0, 0, 0, 4])]))).toBe('h2c');
  });

  it('waits while the bytes are a beginning of the preface', () => {
    expect(protocolOf(Buffer.alloc(0))).toBeUndefined();
    expect(protocolOf(h2cPreface.subarray(0, 1))).toBeUndefined();
    expect(protocolOf(h2cPreface.subarray(0, 23))).toBeUndefined();
  });

  it('is HTTP/1.1 at the first byte that differs', () => {
    expect(protocolOf(Buffer.from('G'))).toBe('http1');
    expect(protocolOf(Buffer.from('POST / HTTP/1.1\r\n'))).toBe('http1');
    expect(protocolOf(Buffer.from('PRI * HTTP/1.1\r\n'))).toBe('http1');
    expect(protocolOf(Buffer.from('PUT /x HTTP/1.1\r\n'))).toBe('http1');
  });
});
