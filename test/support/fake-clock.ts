import type { Clock } from '../../src/runtime/clock.ts';

/** A Clock that moves only when the test says so; timers fire in time order on advance(). */
export class FakeClock implements Clock {
  #now: number;
  #timers: { at: number; seq: number; fire: () => void }[] = [];
  #seq = 0;

  constructor(start = 1_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return 1_795_000_000_000 + this.#now;
  }

  setTimer(ms: number, fire: () => void): () => void {
    const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fire };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((candidate) => candidate !== timer);
    };
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order (and the ones they set). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((timer) => timer.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.#timers = this.#timers.filter((timer) => timer !== due);
      this.#now = due.at;
      due.fire();
    }
    this.#now = target;
  }

  /** Lets promise callbacks run, then advances; for layers that await between timers. */
  async advanceAsync(ms: number, step = 1): Promise<void> {
    const target = this.#now + ms;
    while (this.#now < target) {
      await flushMicrotasks();
      this.advance(Math.min(step, target - this.#now));
    }
    await flushMicrotasks();
  }
}

export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
