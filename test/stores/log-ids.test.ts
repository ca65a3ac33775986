// Log entry ids: ULIDs that sort as text in the order one process made them, whatever its
// clock does, and whose first ten characters are the time they were made.

import { describe, expect, it } from 'vitest';
import { LogIds, highestIdAt, isLogId, lowestIdAt, rangeOf } from '../../src/stores/log.ts';

/** Random bytes that are all `value`, so that the tests know each id's random part. */
const fixed = (value: number) => (size: number) => new Uint8Array(size).fill(value);

describe('log entry ids', () => {
  it('are ULIDs: ten characters of time, sixteen of randomness', () => {
    const id = new LogIds(fixed(0)).next(1_469_918_176_385);

    expect(id).toBe('01ARYZ6S41' + '0'.repeat(16));
    expect(isLogId(id)).toBe(true);
    expect(isLogId('01ARYZ6S41000000000000000I')).toBe(false);
    expect(isLogId('short')).toBe(false);
  });

  it('count up within one millisecond, and when the clock steps back', () => {
    const ids = new LogIds(fixed(0));
    const made = [ids.next(1000), ids.next(1000), ids.next(999), ids.next(1001)];

    expect([...made].sort()).toEqual(made);
    expect(made.map((id) => id.slice(10))).toEqual(['0'.repeat(16), '0'.repeat(15) + '1', '0'.repeat(15) + '2', '0'.repeat(16)]);
    // The clock stepped back: the id keeps the later time it had.
    expect(made[2]!.slice(0, 10)).toBe(made[0]!.slice(0, 10));
    expect(made[3]!.slice(0, 10)).not.toBe(made[0]!.slice(0, 10));
  });

  it('move to the next millisecond when one millisecond runs out of ids', () => {
    const ids = new LogIds(fixed(31));
    const first = ids.next(1000);
    // Every digit at its top: the next increment overflows only once the random part is all Z.
    expect(first.slice(10)).toBe('Z'.repeat(16));
    const second = ids.next(1000);

    expect(second > first).toBe(true);
    expect(second.slice(0, 10)).not.toBe(first.slice(0, 10));
  });

  it('bound the ids of an instant, and a query becomes inclusive bounds', () => {
    const id = new LogIds().next(5000);

    expect(lowestIdAt(5000) <= id && id <= highestIdAt(5000)).toBe(true);
    expect(highestIdAt(4999) < id && id < lowestIdAt(5001)).toBe(true);
    expect(rangeOf({ limit: 10, since: 5000, until: 5000 })).toMatchObject({ low: lowestIdAt(5000), high: highestIdAt(5000), order: 'newest', scan: 1000 });
    expect(rangeOf({ limit: 500, order: 'oldest' }).scan).toBe(5000);
  });
});
