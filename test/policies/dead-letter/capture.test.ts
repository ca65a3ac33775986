// The pure core of dead letters: which final outcomes are kept, what of the request is kept,
// how a replay is sent and judged, and the history a dead letter keeps of its replays.

import { describe, expect, it } from 'vitest';
import type { FallbackTrigger } from '../../../src/config/types.ts';
import {
  MAX_REPLAY_HISTORY,
  asDeadLetterMeta,
  deadLetterMeta,
  decideCapture,
  keptBody,
  keptHeaders,
  storedMeta,
  withReplay,
  type CapturedRequest,
  type DeadLetterMeta,
} from '../../../src/policies/dead-letter/capture.ts';
import { replayDelivered, replayHeaders, unreplayable } from '../../../src/policies/dead-letter/replay.ts';

const all: FallbackTrigger[] = ['timeout', 'upstream-unavailable', 'circuit-open', 'bulkhead-full', '5xx'];
const error = (reason: Parameters<typeof decideCapture>[0] extends infer O ? (O extends { kind: 'error'; reason: infer R } ? R : never) : never, status = 503, callerGone = false) =>
  ({ kind: 'error', reason, status, callerGone }) as const;

describe('which final outcomes are dead letters', () => {
  it.each([
    ['timeout', 504, 'timeout'],
    ['deadline_exceeded', 504, 'timeout'],
    ['upstream_unavailable', 503, 'upstream-unavailable'],
    ['circuit_open', 503, 'circuit-open'],
    ['bulkhead_full', 503, 'bulkhead-full'],
  ] as const)("Breakwater's %s reply is kept, by its reason, when `on` lists %s", (reason, status, trigger) => {
    expect(decideCapture(error(reason, status), [trigger])).toEqual({ capture: true, reason, status });
    expect(decideCapture(error(reason, status), all.filter((candidate) => candidate !== trigger))).toEqual({ capture: false });
  });

  it("keeps an upstream's 5xx by its status, only when `on` lists 5xx", () => {
    expect(decideCapture({ kind: 'response', status: 503, fallback: false }, all)).toEqual({ capture: true, reason: '503', status: 503 });
    expect(decideCapture({ kind: 'response', status: 500, fallback: false }, ['timeout'])).toEqual({ capture: false });
  });

  it('never keeps a success, a 4xx, a fallback\'s answer, an injected fault or a request whose client left', () => {
    expect(decideCapture({ kind: 'response', status: 200, fallback: false }, all)).toEqual({ capture: false });
    expect(decideCapture({ kind: 'response', status: 429, fallback: false }, all)).toEqual({ capture: false });
    expect(decideCapture({ kind: 'response', status: 503, fallback: true }, all)).toEqual({ capture: false });
    expect(decideCapture(error('fault_injected'), all)).toEqual({ capture: false });
    expect(decideCapture(error('payload_too_large', 413), all)).toEqual({ capture: false });
    expect(decideCapture(error('upstream_unavailable', 503, true), all)).toEqual({ capture: false });
  });
});

describe('what a dead letter keeps', () => {
  it('keeps end-to-end headers, less credentials not listed and what belongs to one sending', () => {
    const headers = [
      'Host', 'notify', 'Content-Type', 'application/json', 'Authorization', 'Bearer x', 'Cookie', 'a=1',
      'Connection', 'keep-alive, x-hop', 'X-Hop', 'gone', 'Keep-Alive', 'timeout=5', 'TE', 'trailers',
      'traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-request-id', 'r-1', 'X-Breakwater-Replay', 'forged',
    ];

    expect(keptHeaders(headers, new Set())).toEqual(['Host', 'notify', 'Content-Type', 'application/json', 'x-request-id', 'r-1']);
    expect(keptHeaders(headers, new Set(['authorization']))).toEqual(['Host', 'notify', 'Content-Type', 'application/json', 'Authorization', 'Bearer x', 'x-request-id', 'r-1']);
  });

  it('keeps a body within the limit, and says how large one it did not keep was', () => {
    expect(keptBody(null, 10)).toEqual({ size: 0, truncated: false });
    expect(keptBody(Buffer.from('1234'), 10)).toEqual({ bytes: Buffer.from('1234'), size: 4, truncated: false });
    expect(keptBody(Buffer.from('12345678901'), 10)).toEqual({ size: 11, truncated: true });
    expect(keptBody({ kind: 'whole', bytes: Buffer.from('ab') }, 10)).toEqual({ bytes: Buffer.from('ab'), size: 2, truncated: false });
    expect(keptBody({ kind: 'too-large', size: 1 << 30 }, 10)).toEqual({ size: 1 << 30, truncated: true });
    expect(keptBody({ kind: 'cut', size: 7 }, 10)).toEqual({ size: null, truncated: true });
  });

  const request: CapturedRequest = {
    route: 'notify',
    upstream: 'notifier',
    listener: 'outbound',
    method: 'POST',
    path: '/send?x=1',
    headers: ['Host', 'notify', 'Cookie', 'secret'],
    requestId: 'r-1',
    traceId: undefined,
    attempts: 3,
  };

  it('describes the request, its failure and its body in its meta, and reads it back', () => {
    const meta = deadLetterMeta(request, { capture: true, reason: 'timeout', status: 504 }, { size: 12, truncated: false }, new Set());

    expect(meta).toEqual({
      route: 'notify',
      upstream: 'notifier',
      listener: 'outbound',
      method: 'POST',
      url: '/send?x=1',
      headers: ['Host', 'notify'],
      reason: 'timeout',
      status: 504,
      attempts: 3,
      requestId: 'r-1',
      traceId: null,
      bodyBytes: 12,
      truncated: false,
      replays: [],
      replayCount: 0,
    });
    expect(asDeadLetterMeta(storedMeta(meta))).toEqual(meta);
    expect(asDeadLetterMeta({ ...storedMeta(meta), headers: ['odd'] })).toBeUndefined();
    expect(asDeadLetterMeta({ state: 'completed' })).toBeUndefined();
    expect(asDeadLetterMeta({ ...storedMeta(meta), traceId: 5 })).toBeUndefined();
  });

  it('remembers the latest replays, and counts them all', () => {
    let meta: DeadLetterMeta = deadLetterMeta(request, { capture: true, reason: '503', status: 503 }, { size: 0, truncated: false }, new Set());
    for (let i = 0; i < MAX_REPLAY_HISTORY + 5; i++) meta = withReplay(meta, { at: i, result: 'failure', status: 503, attempts: 1 });

    expect(meta.replayCount).toBe(MAX_REPLAY_HISTORY + 5);
    expect(meta.replays).toHaveLength(MAX_REPLAY_HISTORY);
    expect(meta.replays[0]?.at).toBe(5);
    expect(meta.replays.at(-1)?.at).toBe(MAX_REPLAY_HISTORY + 4);
  });
});

describe('replays', () => {
  it('are marked with the dead letter\'s id, and a POST or PATCH without a key gets the id as its key', () => {
    expect(replayHeaders({ method: 'POST', headers: ['host', 'n'] }, 'ID1')).toEqual(['host', 'n', 'x-breakwater-replay', 'ID1', 'idempotency-key', 'ID1']);
    expect(replayHeaders({ method: 'patch', headers: [] }, 'ID1')).toEqual(['x-breakwater-replay', 'ID1', 'idempotency-key', 'ID1']);
    expect(replayHeaders({ method: 'POST', headers: ['Idempotency-Key', 'theirs'] }, 'ID1')).toEqual(['Idempotency-Key', 'theirs', 'x-breakwater-replay', 'ID1']);
    expect(replayHeaders({ method: 'PUT', headers: [] }, 'ID1')).toEqual(['x-breakwater-replay', 'ID1']);
    // A route whose idempotency reads another header gets the key there.
    expect(replayHeaders({ method: 'POST', headers: [] }, 'ID1', 'x-request-key')).toEqual(['x-breakwater-replay', 'ID1', 'x-request-key', 'ID1']);
  });

  it('are delivered when the upstream answers with something not in `on`', () => {
    expect(replayDelivered({ kind: 'response', status: 201, fallback: false }, all)).toBe(true);
    expect(replayDelivered({ kind: 'response', status: 400, fallback: false }, all)).toBe(true);
    expect(replayDelivered({ kind: 'response', status: 503, fallback: false }, ['timeout'])).toBe(true);
    expect(replayDelivered({ kind: 'response', status: 503, fallback: false }, all)).toBe(false);
    expect(replayDelivered({ kind: 'response', status: 200, fallback: true }, all)).toBe(false);
    expect(replayDelivered(error('circuit_open'), all)).toBe(false);
    expect(replayDelivered(error('fault_injected'), all)).toBe(false);
    expect(replayDelivered(error('idempotency_in_progress', 409), all)).toBe(false);
  });

  it('cannot be made of a dead letter whose body was not kept', () => {
    expect(unreplayable({ truncated: true })).toMatch(/cannot be sent again/);
    expect(unreplayable({ truncated: false })).toBeUndefined();
  });
});
