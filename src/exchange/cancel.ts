// The one way to cancel: every wait and every attempt follows an AbortSignal, aborted with the
// ProxyError that ends it. The listener aborts a request's signal (its timeout, the client
// gone); a layer that starts attempts of its own gives each a child scope, which the parent's
// abort reaches and which can also be cancelled alone.

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

/** A scope inside another: aborted when its parent is, or alone with `cancel`. */
export class ChildScope implements CallScope {
  readonly dueAt: number;
  readonly #controller = new AbortController();
  #unlink: (() => void) | null;
  // Scopes inside this one (an attempt's per-try scope inside a hedge's), told of its end
  // directly: an event listener on the signal each would cost more than the rest of the scope.
  #children: Set<ChildScope> | undefined;

  constructor(parent: CallScope, dueAt: number = parent.dueAt) {
    this.dueAt = dueAt;
    if (parent.signal.aborted) {
      this.#unlink = null;
      this.#controller.abort(parent.signal.reason);
    } else if (parent instanceof ChildScope) {
      const siblings = (parent.#children ??= new Set());
      siblings.add(this);
      this.#unlink = () => siblings.delete(this);
    } else {
      this.#unlink = onAbort(parent.signal, (reason) => this.cancel(reason));
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Ends this scope alone: what runs in it fails with `reason`; the parent goes on. */
  cancel(reason: ProxyError): void {
    this.release();
    if (this.#controller.signal.aborted) return;
    this.#controller.abort(reason);
    const children = this.#children;
    if (children === undefined) return;
    for (const child of [...children]) child.cancel(reason);
  }

  /** Stops following the parent: called once whatever ran in this scope is over. */
  release(): void {
    const unlink = this.#unlink;
    this.#unlink = null;
    unlink?.();
  }
}
