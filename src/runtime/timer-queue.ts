// Many waits on one clock timer. A layer that starts a wait for nearly every request and
// nearly always cancels it before it fires (a hedge delay) would otherwise make and clear a
// platform timer per request. Here waits of the same length form a list in the order they
// started, which is their due order, and the clock holds one timer, for the earliest wait of
// all, or for an earlier one since cancelled: when that fires with nothing due, it is set
// again for the earliest wait left.

import type { Clock } from './clock.ts';

/** A wait in a TimerQueue: from `add` until it fires or is removed. */
export interface QueuedTimer {
  /** When it fires, on the clock's monotonic ms. */
  readonly dueAt: number;
}

class Wait implements QueuedTimer {
  readonly dueAt: number;
  /**
   * Dropped once the wait is over: a wait the garbage collector has moved to the old
   * generation would otherwise hold what `fire` closes over (a request, its response) until
   * the next full collection, even after nothing else reaches the wait.
   */
  fire: (() => void) | null;
  prev: Wait | null = null;
  next: Wait | null = null;
  /** The list it is in; null once it fired or was removed. */
  list: WaitList | null;

  constructor(dueAt: number, fire: () => void, list: WaitList) {
    this.dueAt = dueAt;
    this.fire = fire;
    this.list = list;
  }
}

/** The waits of one length, earliest first. */
class WaitList {
  readonly lengthMs: number;
  first: Wait | null = null;
  last: Wait | null = null;

  constructor(lengthMs: number) {
    this.lengthMs = lengthMs;
  }

  /** Puts `wait` in due order: at the end, unless the clock was read out of order. */
  insert(wait: Wait): void {
    let before = this.last;
    while (before !== null && before.dueAt > wait.dueAt) before = before.prev;
    const after = before === null ? this.first : before.next;
    wait.prev = before;
    wait.next = after;
    if (before === null) this.first = wait;
    else before.next = wait;
    if (after === null) this.last = wait;
    else after.prev = wait;
  }

  unlink(wait: Wait): void {
    const { prev, next } = wait;
    if (prev === null) this.first = next;
    else prev.next = next;
    if (next === null) this.last = prev;
    else next.prev = prev;
    wait.prev = null;
    wait.next = null;
    wait.list = null;
    wait.fire = null;
  }
}

/**
 * Waits that share one timer of `clock`. A wait fires no earlier than its due time, and as
 * soon after as a timer of the clock set for it would. Adding and removing take constant
 * time while there are few distinct lengths (a fixed delay, or a percentile that changes a
 * few times a second).
 */
export class TimerQueue {
  readonly #clock: Clock;
  readonly #lists = new Map<number, WaitList>();
  /** The due time the clock's timer is set for; Infinity when none is. */
  #armedFor = Number.POSITIVE_INFINITY;
  #disarm: (() => void) | null = null;
  /** The list `add` used last, while it holds waits. */
  #lastList: WaitList | null = null;
  readonly #onTimer = (): void => this.#fireDue();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Calls `fire` once `lengthMs` after `startedAt` (clock ms), unless removed first. */
  add(startedAt: number, lengthMs: number, fire: () => void): QueuedTimer {
    // Most waits have the length of the one before.
    let list = this.#lastList;
    if (list === null || list.lengthMs !== lengthMs || list.first === null) {
      list = this.#lists.get(lengthMs) ?? null;
      if (list === null) {
        list = new WaitList(lengthMs);
        this.#lists.set(lengthMs, list);
      }
      this.#lastList = list;
    }
    const wait = new Wait(startedAt + lengthMs, fire, list);
    list.insert(wait);
    if (wait.dueAt < this.#armedFor) this.#arm(wait.dueAt);
    return wait;
  }

  /** Cancels `timer` if it has not fired yet. */
  remove(timer: QueuedTimer): void {
    const wait = timer as Wait;
    const list = wait.list;
    if (list === null) return;
    list.unlink(wait);
    if (list.first !== null) return;
    this.#lists.delete(list.lengthMs);
    // With nothing left to wait for, no timer holds the process open.
    if (this.#lists.size === 0) {
      this.#disarm?.();
      this.#disarm = null;
      this.#armedFor = Number.POSITIVE_INFINITY;
    }
  }

  #arm(dueAt: number): void {
    this.#disarm?.();
    this.#armedFor = dueAt;
    this.#disarm = this.#clock.setTimer(dueAt - this.#clock.now(), this.#onTimer);
  }

  #fireDue(): void {
    this.#disarm = null;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    for (;;) {
      // The earliest due wait of all lists; a wait that fires may add or remove others.
      let earliest: Wait | null = null;
      for (const list of this.#lists.values()) {
        const first = list.first;
        if (first !== null && (earliest === null || first.dueAt < earliest.dueAt)) earliest = first;
      }
      if (earliest === null) return;
      if (earliest.dueAt > now) {
        if (earliest.dueAt < this.#armedFor) this.#arm(earliest.dueAt);
        return;
      }
      const fire = earliest.fire!;
      this.remove(earliest);
      fire();
    }
  }
}
