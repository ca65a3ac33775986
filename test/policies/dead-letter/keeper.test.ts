// The keeper of a config's dead letters: retention enforced by a sweep on the clock, and the
// depth and oldest age telemetry reads, on a real memory store and a fake clock.

import { describe, expect, it } from 'vitest';
import type { DeadLetterConfig } from '../../../src/config/types.ts';
import { DEAD_LETTER_STREAM } from '../../../src/policies/dead-letter/capture.ts';
import { DeadLetterKeeper } from '../../../src/policies/dead-letter/keeper.ts';
import { openStore } from '../../../src/stores/open.ts';
import { FakeClock } from '../../support/fake-clock.ts';

const day = 86_400_000;
const config = (retentionMs: number): DeadLetterConfig => ({ store: 'default', on: ['timeout'], maxBodyBytes: 1024, retentionMs, maxEntries: 10_000, keepHeaders: [] });

function setup() {
  const clock = new FakeClock();
  const store = openStore({ name: 'default', type: 'memory', timeoutMs: 50, maxEntries: 10_000, maxBytes: 16 << 20 }, { clock });
  const keeper = new DeadLetterKeeper({ clock, sweepIntervalMs: 60_000 });
  const append = (route: string, n: number) => Promise.all(Array.from({ length: n }, () => store.log.append(DEAD_LETTER_STREAM, { partition: route, meta: {} }, 10_000)));
  const count = async (route: string) => (await store.log.stats(DEAD_LETTER_STREAM)).find((stats) => stats.partition === route)?.entries ?? 0;
  return { clock, store, keeper, append, count };
}

describe('the dead-letter keeper', () => {
  it('deletes dead letters older than their route\'s retention, on its sweep', async () => {
    const { clock, store, keeper, append, count } = setup();
    keeper.retain([
      { route: 'notify', config: config(day), log: store.log },
      { route: 'audit', config: config(7 * day), log: store.log },
    ]);
    await append('notify', 3);
    await append('audit', 2);

    // A day and a minute later: notify's are past their retention, audit's are not.
    clock.advance(day);
    await keeper.sweep();
    await append('notify', 1);
    clock.advance(60_000);
    // The sweep the timer started.
    await keeper.sweep();

    expect(await count('notify')).toBe(1);
    expect(await count('audit')).toBe(2);
  });

  it('works off a large backlog in batches within one sweep', async () => {
    const { clock, store, keeper, append, count } = setup();
    keeper.retain([{ route: 'notify', config: config(60_000), log: store.log }]);
    await append('notify', 2500);
    clock.advance(60_001);
    // The timer's sweep ran a millisecond too early for them; the next one takes them all.
    expect(await keeper.sweep()).toBe(0);

    expect(await keeper.sweep()).toBe(2500);
    expect(await count('notify')).toBe(0);
  });

  it('reads each route\'s depth and oldest age, 0 for a route with none, and leaves out a store that fails', async () => {
    const { clock, store, keeper, append } = setup();
    const broken = openStore({ name: 'broken', type: 'memory', timeoutMs: 50, maxEntries: 10, maxBytes: 1000 }, { clock });
    await broken.close();
    keeper.retain([
      { route: 'notify', config: config(day), log: store.log },
      { route: 'quiet', config: config(day), log: store.log },
      { route: 'elsewhere', config: config(day), log: broken.log },
    ]);
    await append('notify', 2);
    clock.advance(90_000);

    expect(await keeper.depths()).toEqual([
      { route: 'notify', entries: 2, oldestAgeSeconds: 90 },
      { route: 'quiet', entries: 0, oldestAgeSeconds: 0 },
    ]);
  });

  it('sweeps only while some route keeps dead letters, and stops when closed', () => {
    const { clock, store, keeper } = setup();

    expect(clock.pending).toBe(0);
    keeper.retain([{ route: 'notify', config: config(day), log: store.log }]);
    expect(clock.pending).toBe(1);
    keeper.retain([]);
    expect(clock.pending).toBe(0);
    keeper.retain([{ route: 'notify', config: config(day), log: store.log }]);
    keeper.close();
    expect(clock.pending).toBe(0);
  });
});
