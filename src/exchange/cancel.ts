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

/** True once `scope` has ended; a Scope answers without making its signal. */
export function scopeEnded(scope: CallScope): boolean {
  return scope instanceof Scope ? scope.endedWith !== undefined : scope.signal.aborted;
}

/** The ProxyError `scope` ended with; the caller has checked that it has ended. */
export function scopeEndReason(scope: CallScope): ProxyError {
  return (scope instanceof Scope ? scope.endedWith : undefined) ?? abortReason(scope.signal);
}

/**
 * A scope that can be ended alone with `cancel`: a request's own (`Scope.root`), or one inside
 * another, which ends when its parent does. Its AbortSignal is made the first time it is asked
 * for: most requests end without anything waiting on one, and an AbortController with its
 * listeners costs more than the rest of a scope.
 */
export class Scope implements CallScope {
  readonly dueAt: number;
  #controller: AbortController | undefined;
  /** The reason it ended with; undefined while it runs. */
  #reason: ProxyError | undefined;
  #unlink: (() => void) | null;
  // Those told of its end directly: scopes inside this one (an attempt's per-try scope inside
  // a hedge's), and the exchanges running in it.
  #followers: Set<(reason: ProxyError) => void> | undefined;

  /** The scope of a whole request, which nothing encloses: it ends by `cancel` alone. */
  static root(dueAt: number): Scope {
    return new Scope(undefined, dueAt);
  }

  constructor(parent: CallScope | undefined, dueAt: number = parent?.dueAt ?? Infinity) {
    this.dueAt = dueAt;
    if (parent === undefined) {
      this.#unlink = null;
    } else if (scopeEnded(parent)) {
      this.#unlink = null;
      this.#reason = scopeEndReason(parent);
    } else {
      this.#unlink = onScopeEnd(parent, (reason) => this.cancel(reason));
    }
  }

  get signal(): AbortSignal {
    let controller = this.#controller;
    if (controller === undefined) {
      controller = this.#controller = new AbortController();
      if (this.#reason !== undefined) controller.abort(this.#reason);
    }
    return controller.signal;
  }

  /** The reason this scope ended with; undefined while it runs. */
  get endedWith(): ProxyError | undefined {
    return this.#reason;
  }

  /** Calls `fire` once when this scope ends; returns a function that stops following it. */
  follow(fire: (reason: ProxyError) => void): () => void {
    const followers = (this.#followers ??= new Set());
    // A function of its own, so that following twice with the same one is two follows.
    const follower = (reason: ProxyError): void => fire(reason);
    followers.add(follower);
    return () => void followers.delete(follower);
  }

  /** Ends this scope alone: what runs in it fails with `reason`; the parent goes on. */
  cancel(reason: ProxyError): void {
    this.release();
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const followers = this.#followers;
    if (followers === undefined) return;
    this.#followers = undefined;
    for (const follower of followers) follower(reason);
  }

  /** Stops following the parent: called once whatever ran in this scope is over. */
  release(): void {
    const unlink = this.#unlink;
    this.#unlink = null;
    unlink?.();
  }
}
