import { describe, expect, it } from 'vitest';
import { clientKey, ConnectionTable } from '../../../src/proxy/connections.ts';

const limits = { maxConnections: 3, maxConnectionsPerClient: 2 };

describe('the connection table of a listener', () => {
  it('refuses a client past its own limit while others still get in', () => {
    const table = new ConnectionTable();

    expect(table.admit('10.0.0.7', limits)).toBeUndefined();
    expect(table.admit('10.0.0.7', limits)).toBeUndefined();
    // The third from the same address is one too many for it, not for the listener.
    expect(table.admit('10.0.0.7', limits)).toBe('per_client');
    expect(table.admit('10.0.0.8', limits)).toBeUndefined();

    expect(table.open).toBe(3);
    expect(table.openFrom('10.0.0.7')).toBe(2);
  });

  it('refuses everyone once the listener is full, and admits again when one closes', () => {
    const table = new ConnectionTable();
    for (const client of ['a', 'b', 'c']) table.admit(client, limits);

    expect(table.admit('d', limits)).toBe('max_connections');

    table.release('b');
    expect(table.admit('d', limits)).toBeUndefined();
  });

  it('forgets a client once its last connection closed, and ignores a release it never admitted', () => {
    const table = new ConnectionTable();
    table.admit('a', limits);

    table.release('a');
    table.release('a');
    table.release('never-seen');

    expect(table.open).toBe(0);
    expect(table.openFrom('a')).toBe(0);
  });

  it('counts an IPv4 peer seen on a dual-stack socket as the same client', () => {
    expect(clientKey('::ffff:10.0.0.7')).toBe('10.0.0.7');
    expect(clientKey('10.0.0.7')).toBe('10.0.0.7');
    expect(clientKey('::1')).toBe('::1');
  });
});
