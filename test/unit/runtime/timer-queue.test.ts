import { describe, expect, it } from 'vitest';
import { TimerQueue } from '../../../src/runtime/timer-queue.ts';
import { FakeClock } from '../../support/fake-clock.ts';

function setup() {
  const clock = new FakeClock(1_000);
  const queue = new TimerQueue(clock);
  const fired: { name: string; at: number }[] = [];
  const add = (name: string, lengthMs: number, startedAt = clock.now()) => queue.add(startedAt, lengthMs, () => fired.push({ name, at: clock.now() }));
  return { clock, queue, fired, add };
}

describe('a timer queue', () => {
  it('fires each wait at its due time, not before, in due order', () => {
    const { clock, fired, add } = setup();
    add('a', 20);
    clock.advance(5);
    add('b', 20);
    clock.advance(14);
    expect(fired).toEqual([]);
    clock.advance(1);
    expect(fired).toEqual([{ name: 'a', at: 1_020 }]);
    clock.advance(5);
    expect(fired).toEqual([
      { name: 'a', at: 1_020 },
      { name: 'b', at: 1_025 },
    ]);
    expect(clock.pending).toBe(0);
  });

  it('holds one clock timer however many waits it holds', () => {
    const { clock, add } = setup();
    for (let i = 0; i < 100; i++) add(`w${i}`, 50);
    expect(clock.pending).toBe(1);
  });

  it('never fires a removed wait, and lets the clock go once nothing waits', () => {
    const { clock, queue, fired, add } = setup();
    const a = add('a', 20);
    const b = add('b', 30);
    queue.remove(a);
    clock.advance(25);
    expect(fired).toEqual([]);
    // The timer set for the removed wait fired with nothing due, and was set again for the next.
    expect(clock.pending).toBe(1);
    queue.remove(b);
    expect(clock.pending).toBe(0);
    clock.advance(100);
    expect(fired).toEqual([]);
    // Removing twice, or after firing, changes nothing.
    queue.remove(b);
    const c = add('c', 10);
    clock.advance(10);
    queue.remove(c);
    expect(fired).toEqual([{ name: 'c', at: 1_135 }]);
  });

  it('takes new waits of a length whose waits were all removed, between waits of other lengths', () => {
    const { clock, queue, fired, add } = setup();
    queue.remove(add('gone', 20));
    expect(clock.pending).toBe(0);
    add('a', 20);
    add('b', 30);
    add('c', 20);
    clock.advance(30);
    expect(fired).toEqual([
      { name: 'a', at: 1_020 },
      { name: 'c', at: 1_020 },
      { name: 'b', at: 1_030 },
    ]);
    add('d', 20);
    clock.advance(20);
    expect(fired.at(-1)).toEqual({ name: 'd', at: 1_050 });
    expect(clock.pending).toBe(0);
  });

  it('fires a shorter wait added after a longer one first', () => {
    const { clock, fired, add } = setup();
    add('long', 100);
    add('short', 10);
    clock.advance(100);
    expect(fired).toEqual([
      { name: 'short', at: 1_010 },
      { name: 'long', at: 1_100 },
    ]);
  });

  it('keeps due order within a length when waits are added out of order', () => {
    const { clock, fired, add } = setup();
    add('later', 20, 1_010);
    add('earlier', 20, 1_000);
    clock.advance(30);
    expect(fired.map(({ name }) => name)).toEqual(['earlier', 'later']);
  });

  it('fires waits that a firing wait adds, at their own due time', () => {
    const { clock, queue, fired } = setup();
    queue.add(clock.now(), 10, () => {
      fired.push({ name: 'first', at: clock.now() });
      queue.add(clock.now(), 0, () => fired.push({ name: 'at once', at: clock.now() }));
      queue.add(clock.now(), 15, () => fired.push({ name: 'then', at: clock.now() }));
    });
    clock.advance(30);
    expect(fired).toEqual([
      { name: 'first', at: 1_010 },
      { name: 'at once', at: 1_010 },
      { name: 'then', at: 1_025 },
    ]);
    expect(clock.pending).toBe(0);
  });
});
