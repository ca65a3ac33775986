// The one way to cancel: every wait and every attempt follows an AbortSignal, aborted with the
// ProxyError that ends it. The listener aborts a request's signal (its timeout, the client
// gone); a layer that starts attempts of its own gives each a child scope, which the parent's
// end reaches and which can also be cancelled alone.

import type { Clock } from '../runtime/clock.ts';
import { ProxyError } from './errors.ts';
import type { CallScope } from './handler.ts';

/** The ProxyError `signal` was aborted with. */
export function abortReason(signal: AbortSignal): ProxyError {
  const reason: unknown = signal.reason;
  return reason instanceof ProxyError ? reason : new ProxyError('upstream_unavailable', { message: 'the request was cancelled', cause: reason });
}

/**
 * Calls `fire` once with the abort's reason when `signal` aborts; returns a function that stops
 * listening. The caller has checked that the signal is not aborted yet.
 */
export function onAbort(signal: AbortSignal, fire: (reason: ProxyError) => void): () => void {
  const listener = (): void => fire(abortReason(signal));
  signal.addEventListener('abort', listener, { once: true });
  return () => signal.removeEventListener('abort', listener);
}

/**
 * Waits `ms` on the clock. Rejects with the abort's reason as soon as `signal` aborts (at once
 * when it already has); the timer and the listener are gone either way.
 */
export function waitOrAbort(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const stopListening = onAbort(signal, (reason) => {
      cancelTimer();
      reject(reason);
    });
    const cancelTimer = clock.setTimer(ms, () => {
      stopListening();
      resolve();
    });
  });
}

/**
 * Calls `fire` once with the reason when `scope` ends; returns a function that stops
 * following it. The caller has checked that the scope has not ended yet. A Scope tells those
 * that follow it directly: an event listener on its signal costs more than the rest of it.
 */
export function onScopeEnd(scope: CallScope, fire: (reason: ProxyError) => void): () => void {
  return scope instanceof Scope ? scope.follow(fire) : onAbort(scope.signal, fire);
}

/** True once `scope` has ended: read without making a Scope's signal, which it makes only when asked. */
export function hasEnded(scope: CallScope): boolean {
  return scope instanceof Scope ? scope.ended : scope.signal.aborted;
}

/** What a Scope tells directly when it ends: a scope inside it, an exchange running in it. */
export interface ScopeFollower {
  scopeEnded(reason: ProxyError): void;
}

/** A function told as a follower: what `follow` hands out. */
class FireOnEnd implements ScopeFollower {
  readonly #fire: (reason: ProxyError) => void;

  constructor(fire: (reason: ProxyError) => void) {
    this.#fire = fire;
  }

  scopeEnded(reason: ProxyError): void {
    this.#fire(reason);
  }
}

/**
 * A scope that can be ended alone with `cancel`: a request's own (`Scope.root`), or one inside
 * another, which ends when its parent does. Most scopes end without anyone reading their
 * signal (an attempt that answers, a request that completes): the AbortController behind it is
 * made only once someone asks for it.
 */
export class Scope implements CallScope, ScopeFollower {
  readonly dueAt: number;
  #controller: AbortController | undefined;
  #ended = false;
  #reason: unknown;
  // The parent it follows until released: a Scope directly, any other through its signal.
  #parent: Scope | null = null;
  #stopListening: (() => void) | null = null;
  // Those told of its end directly: most scopes have one (the exchange, or the per-try scope,
  // running in it), so the first is kept apart from the rest.
  #follower: ScopeFollower | null = null;
  #more: ScopeFollower[] | null = null;

  /** The scope of a whole request, which nothing encloses: it ends by `cancel` alone. */
  static root(dueAt: number): Scope {
    return new Scope(undefined, dueAt);
  }

  constructor(parent: CallScope | undefined, dueAt: number = parent?.dueAt ?? Infinity) {
    this.dueAt = dueAt;
    if (parent === undefined) return;
    if (parent instanceof Scope) {
      if (parent.#ended) this.#end(parent.#reason);
      else {
        this.#parent = parent;
        parent.add(this);
      }
    } else if (parent.signal.aborted) {
      this.#end(parent.signal.reason);
    } else {
      this.#stopListening = onAbort(parent.signal, (reason) => this.cancel(reason));
    }
  }

  get signal(): AbortSignal {
    let controller = this.#controller;
    if (controller === undefined) {
      controller = this.#controller = new AbortController();
      if (this.#ended) controller.abort(this.#reason);
    }
    return controller.signal;
  }

  /** True once the scope has ended: cancelled, or its parent ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Calls `fire` once when this scope ends; returns a function that stops following it. */
  follow(fire: (reason: ProxyError) => void): () => void {
    // An object of its own, so that following twice with the same function is two follows.
    const follower = new FireOnEnd(fire);
    this.add(follower);
    return () => this.remove(follower);
  }

  /** Tells `follower` once when this scope ends, until `remove`; the caller has checked it has not ended. */
  add(follower: ScopeFollower): void {
    if (this.#follower === null) this.#follower = follower;
    else (this.#more ??= []).push(follower);
  }

  /** Stops telling `follower` (once, for a follower added more than once). */
  remove(follower: ScopeFollower): void {
    if (this.#follower === follower) {
      this.#follower = null;
      return;
    }
    const more = this.#more;
    if (more === null) return;
    const at = more.indexOf(follower);
    if (at >= 0) more.splice(at, 1);
  }

  /** A follower of its parent: the parent's end is this scope's. */
  scopeEnded(reason: ProxyError): void {
    this.cancel(reason);
  }

  /** Ends this scope alone: what runs in it fails with `reason`; the parent goes on. */
  cancel(reason: ProxyError): void {
    this.release();
    if (this.#ended) return;
    this.#end(reason);
    const first = this.#follower;
    const more = this.#more;
    this.#follower = null;
    this.#more = null;
    first?.scopeEnded(reason);
    if (more !== null) for (const follower of more) follower.scopeEnded(reason);
  }

  #end(reason: unknown): void {
    this.#ended = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }

  /** Stops following the parent: called once whatever ran in this scope is over. */
  release(): void {
    const parent = this.#parent;
    if (parent !== null) {
      this.#parent = null;
      parent.remove(this);
    }
    const stopListening = this.#stopListening;
    this.#stopListening = null;
    stopListening?.();
  }
}
