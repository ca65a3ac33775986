import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { abortReason, hasEnded, onAbort, onScopeEnd, Scope, waitOrAbort } from '../../src/exchange/cancel.ts';
import { ProxyError } from '../../src/exchange/errors.ts';
import { FakeClock, flushMicrotasks } from '../support/fake-clock.ts';

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

function requestScope(dueAt = 5_000) {
  const controller = new AbortController();
  return { controller, scope: { signal: controller.signal, dueAt } };
}

describe('abortReason', () => {
  it('is the ProxyError the signal was aborted with', () => {
    const controller = new AbortController();
    const timeout = new ProxyError('timeout', { attemptFailure: 'timeout' });
    controller.abort(timeout);
    expect(abortReason(controller.signal)).toBe(timeout);
  });

  it('wraps any other reason as a cancelled request', () => {
    const controller = new AbortController();
    controller.abort(new Error('shutdown'));
    const reason = abortReason(controller.signal);
    expect(reason).toMatchObject({ reason: 'upstream_unavailable', message: 'the request was cancelled' });
    expect((reason.cause as Error).message).toBe('shutdown');
  });
});

describe('onAbort', () => {
  it('fires once with the reason, and not after it stopped listening', () => {
    const first = new AbortController();
    const fired: ProxyError[] = [];
    onAbort(first.signal, (reason) => fired.push(reason));
    const gone = new ProxyError('upstream_unavailable');
    first.abort(gone);
    first.abort(new ProxyError('timeout'));
    expect(fired).toEqual([gone]);

    const second = new AbortController();
    const stop = onAbort(second.signal, (reason) => fired.push(reason));
    stop();
    second.abort(new ProxyError('timeout'));
    expect(fired).toEqual([gone]);
    expect(listeners(second.signal)).toBe(0);
  });
});

describe('waitOrAbort', () => {
  it('resolves after the wait and leaves no listener behind', async () => {
    const clock = new FakeClock();
    const { controller } = requestScope();
    let done = false;
    const waiting = waitOrAbort(clock, 100, controller.signal).then(() => (done = true));
    clock.advance(99);
    await flushMicrotasks();
    expect(done).toBe(false);
    clock.advance(1);
    await waiting;
    expect(listeners(controller.signal)).toBe(0);
  });

  it('rejects with the reason as soon as the signal aborts, and cancels its timer', async () => {
    const clock = new FakeClock();
    const { controller } = requestScope();
    const waiting = waitOrAbort(clock, 100, controller.signal).catch((error: unknown) => error);
    const timeout = new ProxyError('timeout');
    controller.abort(timeout);
    expect(await waiting).toBe(timeout);
    expect(clock.pending).toBe(0);
  });

  it('rejects at once when the signal has already aborted', async () => {
    const clock = new FakeClock();
    const { controller } = requestScope();
    const gone = new ProxyError('upstream_unavailable');
    controller.abort(gone);
    await expect(waitOrAbort(clock, 100, controller.signal)).rejects.toBe(gone);
    expect(clock.pending).toBe(0);
  });
});

describe('Scope', () => {
  it("as a request's own, ends what runs inside it with the reason it was cancelled with, and only once", () => {
    const request = Scope.root(5_000);
    const attempt = new Scope(request, 1_500);
    const told: ProxyError[] = [];
    onScopeEnd(attempt, (reason) => told.push(reason));
    const stopped = onScopeEnd(request, () => told.push(new ProxyError('no_route')));
    stopped();
    // Scopes follow a Scope without event listeners on its signal.
    expect(listeners(request.signal)).toBe(0);
    const clientGone = new ProxyError('upstream_unavailable', { message: 'the client closed the connection' });
    request.cancel(clientGone);
    request.cancel(new ProxyError('timeout'));
    expect(request.signal.reason).toBe(clientGone);
    expect(attempt.signal.reason).toBe(clientGone);
    expect(told).toEqual([clientGone]);
  });

  it('follows a scope that is not a Scope through its signal', () => {
    const { controller, scope } = requestScope();
    const told: ProxyError[] = [];
    const stop = onScopeEnd(scope, (reason) => told.push(reason));
    expect(listeners(scope.signal)).toBe(1);
    stop();
    expect(listeners(scope.signal)).toBe(0);
    onScopeEnd(scope, (reason) => told.push(reason));
    const timeout = new ProxyError('timeout');
    controller.abort(timeout);
    expect(told).toEqual([timeout]);
  });

  it('is aborted, with the same reason, when its parent is', () => {
    const { controller, scope } = requestScope();
    const first = new Scope(scope);
    const second = new Scope(scope, 1_200);
    expect([first.dueAt, second.dueAt]).toEqual([5_000, 1_200]);
    const timeout = new ProxyError('timeout');
    controller.abort(timeout);
    expect(first.signal.reason).toBe(timeout);
    expect(second.signal.reason).toBe(timeout);
  });

  it('can be cancelled alone, leaving its parent and its siblings running', () => {
    const { scope } = requestScope();
    const loser = new Scope(scope);
    const winner = new Scope(scope);
    expect(listeners(scope.signal)).toBe(2);
    loser.cancel(new ProxyError('upstream_unavailable', { message: 'another attempt won' }));
    expect(loser.signal.aborted).toBe(true);
    expect(winner.signal.aborted).toBe(false);
    expect(scope.signal.aborted).toBe(false);
    // The cancelled child no longer follows its parent.
    expect(listeners(scope.signal)).toBe(1);
  });

  it('stops following its parent once released', () => {
    const { controller, scope } = requestScope();
    const child = new Scope(scope);
    child.release();
    child.release();
    expect(listeners(scope.signal)).toBe(0);
    controller.abort(new ProxyError('timeout'));
    expect(child.signal.aborted).toBe(false);
  });

  it('nested in another child, ends with the request, with its parent, and alone, without a listener of its own', () => {
    const { controller, scope } = requestScope();
    // A hedge's attempt, and the per-try scope inside it.
    const attempt = new Scope(scope);
    const perTry = new Scope(attempt, 1_500);
    expect(listeners(scope.signal)).toBe(1);
    expect(listeners(attempt.signal)).toBe(0);

    // Cancelled alone, the inner scope leaves its parent running.
    const timedOut = new ProxyError('timeout', { attemptFailure: 'timeout' });
    perTry.cancel(timedOut);
    expect(perTry.signal.reason).toBe(timedOut);
    expect(attempt.signal.aborted).toBe(false);

    // The parent cancelled (a hedge that lost): the next inner scope ends with it.
    const next = new Scope(attempt);
    const lost = new ProxyError('upstream_unavailable', { message: 'another attempt won' });
    attempt.cancel(lost);
    expect(next.signal.reason).toBe(lost);

    // The request's end reaches a scope two levels down.
    const other = new Scope(scope);
    const deep = new Scope(other);
    const released = new Scope(other);
    released.release();
    const timeout = new ProxyError('timeout');
    controller.abort(timeout);
    expect(other.signal.reason).toBe(timeout);
    expect(deep.signal.reason).toBe(timeout);
    // Released, it no longer follows its parent.
    expect(released.signal.aborted).toBe(false);
  });

  it('starts aborted under a parent that already is', () => {
    const { controller, scope } = requestScope();
    const gone = new ProxyError('upstream_unavailable');
    controller.abort(gone);
    const child = new Scope(scope);
    expect(child.signal.reason).toBe(gone);
    expect(listeners(scope.signal)).toBe(0);
  });

  it('tells whether it has ended before anyone reads its signal, and its signal then reads aborted with the reason', () => {
    const request = Scope.root(5_000);
    const attempt = new Scope(request, 1_500);
    const { scope: plain, controller } = requestScope();
    expect([hasEnded(request), hasEnded(attempt), hasEnded(plain)]).toEqual([false, false, false]);
    const timeout = new ProxyError('timeout');
    request.cancel(timeout);
    controller.abort(timeout);
    expect([hasEnded(request), hasEnded(attempt), hasEnded(plain)]).toEqual([true, true, true]);
    expect(attempt.signal.aborted).toBe(true);
    expect(attempt.signal.reason).toBe(timeout);
  });

  it('tells a function followed twice twice, and once after one follow is stopped', () => {
    const request = Scope.root(5_000);
    const told: ProxyError[] = [];
    const fire = (reason: ProxyError): number => told.push(reason);
    onScopeEnd(request, fire);
    const stop = onScopeEnd(request, fire);
    onScopeEnd(request, fire);
    stop();
    const gone = new ProxyError('upstream_unavailable');
    request.cancel(gone);
    expect(told).toEqual([gone, gone]);
  });
});
