// The pure core of dead letters: which final outcomes make a request a dead letter, and what
// of the request is kept. The layer (layer.ts) reads the outcome and writes the entry.

import type { FallbackTrigger } from '../../config/types.ts';
import type { LocalReason } from '../../exchange/errors.ts';
import { connectionTokens, hopByHop } from '../../exchange/headers.ts';
import { callFailure } from '../../exchange/outcome.ts';
import type { CapturedBody } from '../../exchange/request-body.ts';
import type { JsonObject } from '../../stores/store.ts';

/** The log, in the route's store, that dead letters are appended to; each route is a partition of it. */
export const DEAD_LETTER_STREAM = 'dead-letters';

/** Marks a request as the replay of a dead letter; its value is the dead letter's id. */
export const REPLAY_HEADER = 'x-breakwater-replay';

/** How a pass through the route's policies ended, as the dead-letter layer sees it. */
export type FinalOutcome =
  /** A response head: the upstream's, or one a fallback made. */
  | { readonly kind: 'response'; readonly status: number; readonly fallback: boolean }
  /** A reply Breakwater makes itself. `callerGone`: the request ended because its client left. */
  | { readonly kind: 'error'; readonly reason: LocalReason; readonly status: number; readonly callerGone: boolean };

export type CaptureDecision =
  | { readonly capture: false }
  /** `reason`: the reply's reason (section 5 of the reply table), or the upstream's status as text. */
  | { readonly capture: true; readonly reason: string; readonly status: number };

const noCapture: CaptureDecision = { capture: false };

/**
 * Whether a request that ended with `outcome` is a dead letter for a route that keeps `on`. A
 * fallback's answer is not (the caller was answered), nor is a request whose client left (no
 * upstream failed it), nor anything outside `on`.
 */
export function decideCapture(outcome: FinalOutcome, on: readonly FallbackTrigger[]): CaptureDecision {
  if (outcome.kind === 'response') {
    if (outcome.fallback) return noCapture;
    const failure = callFailure({ kind: 'response', status: outcome.status });
    return failure !== undefined && on.includes(failure) ? { capture: true, reason: String(outcome.status), status: outcome.status } : noCapture;
  }
  if (outcome.callerGone) return noCapture;
  const failure = callFailure({ kind: 'error', reason: outcome.reason });
  return failure !== undefined && on.includes(failure) ? { capture: true, reason: outcome.reason, status: outcome.status } : noCapture;
}

/** Credentials: dropped from dead letters unless the route lists them in keepHeaders. */
const credentials: ReadonlySet<string> = new Set(['authorization', 'cookie', 'proxy-authorization']);

// A replay is a request of its own: it gets its own trace context and attempt numbers, and is
// marked as a replay by Breakwater, never by what a caller sent.
const perRequest: ReadonlySet<string> = new Set(['traceparent', 'tracestate', 'x-breakwater-attempt', REPLAY_HEADER]);

/**
 * The headers a dead letter keeps, as a flat [name, value, ...] list: the request's, less
 * hop-by-hop ones (and any its Connection header names), less the credentials `keep` does not
 * list, less those that belong to one sending of the request.
 */
export function keptHeaders(headers: readonly string[], keep: ReadonlySet<string>): string[] {
  let named: Set<string> | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === 'connection') {
      for (const token of connectionTokens(headers[i + 1]) ?? []) (named ??= new Set()).add(token);
    }
  }
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (hopByHop.has(name) || named?.has(name) || perRequest.has(name)) continue;
    if (credentials.has(name) && !keep.has(name)) continue;
    kept.push(headers[i]!, headers[i + 1]!);
  }
  return kept;
}

/** What a dead letter says of its request body. */
export interface KeptBody {
  /** The bytes to keep; absent when the request had no body or it was not kept. */
  readonly bytes?: Buffer;
  /** The body's size when known, else null (no body: 0). */
  readonly size: number | null;
  /** The body was not kept whole: the dead letter cannot be replayed. */
  readonly truncated: boolean;
}

/** What to keep of a request body, from its bytes (already whole), from a capture's outcome, or from its absence. */
export function keptBody(body: Buffer | CapturedBody | null, maxBodyBytes: number): KeptBody {
  if (body === null) return { size: 0, truncated: false };
  if (Buffer.isBuffer(body)) return body.length <= maxBodyBytes ? { bytes: body, size: body.length, truncated: false } : { size: body.length, truncated: true };
  switch (body.kind) {
    case 'whole':
      return { bytes: body.bytes, size: body.bytes.length, truncated: false };
    case 'too-large':
      return { size: body.size, truncated: true };
    case 'cut':
      // The client did not send it all: what arrived is not the request, and its size is unknown.
      return { size: null, truncated: true };
    default:
      return body satisfies never;
  }
}

/** A replay of a dead letter, as its history keeps it. */
export interface ReplayRecord {
  /** Wall-clock milliseconds since the epoch. */
  readonly at: number;
  readonly result: 'success' | 'failure';
  /** The status the replay got: the upstream's, or that of Breakwater's own reply. */
  readonly status: number;
  /** Breakwater's reply reason, when it made the reply. */
  readonly reason?: string;
  readonly attempts: number;
}

/** A dead letter's meta, as stored. */
export interface DeadLetterMeta {
  readonly route: string;
  readonly upstream: string;
  readonly listener: string;
  readonly method: string;
  /** The request target in origin form: path and query. */
  readonly url: string;
  /** Flat [name, value, ...] list. */
  readonly headers: readonly string[];
  readonly reason: string;
  readonly status: number;
  readonly attempts: number;
  readonly requestId: string;
  readonly traceId: string | null;
  readonly bodyBytes: number | null;
  readonly truncated: boolean;
  /** The latest replays, oldest first, at most MAX_REPLAY_HISTORY. */
  readonly replays: readonly ReplayRecord[];
  /** Every replay so far, the forgotten ones included. */
  readonly replayCount: number;
}

/** The replays a dead letter remembers: enough to see a pattern, bounded so its meta stays small. */
export const MAX_REPLAY_HISTORY = 20;

/** The request as the dead-letter layer saw it, before any policy below it ran. */
export interface CapturedRequest {
  readonly route: string;
  readonly upstream: string;
  readonly listener: string;
  readonly method: string;
  readonly path: string;
  readonly headers: readonly string[];
  readonly requestId: string;
  readonly traceId: string | undefined;
  readonly attempts: number;
}

/** The meta of a new dead letter. */
export function deadLetterMeta(request: CapturedRequest, decision: Extract<CaptureDecision, { capture: true }>, body: KeptBody, keep: ReadonlySet<string>): DeadLetterMeta {
  return {
    route: request.route,
    upstream: request.upstream,
    listener: request.listener,
    method: request.method,
    url: request.path,
    headers: keptHeaders(request.headers, keep),
    reason: decision.reason,
    status: decision.status,
    attempts: request.attempts,
    requestId: request.requestId,
    traceId: request.traceId ?? null,
    bodyBytes: body.size,
    truncated: body.truncated,
    replays: [],
    replayCount: 0,
  };
}

/** `meta` with one more replay in its history, the oldest forgotten past MAX_REPLAY_HISTORY. */
export function withReplay(meta: DeadLetterMeta, replay: ReplayRecord): DeadLetterMeta {
  return { ...meta, replays: [...meta.replays, replay].slice(-MAX_REPLAY_HISTORY), replayCount: meta.replayCount + 1 };
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isInteger = (value: unknown): value is number => Number.isSafeInteger(value);

/** Reads a stored meta; undefined when it is not one this version wrote. */
export function asDeadLetterMeta(meta: JsonObject): DeadLetterMeta | undefined {
  const m = meta as Record<string, unknown>;
  const strings = ['route', 'upstream', 'listener', 'method', 'url', 'reason', 'requestId'] as const;
  if (!strings.every((key) => isString(m[key]))) return undefined;
  if (!isInteger(m.status) || !isInteger(m.attempts) || !isInteger(m.replayCount) || typeof m.truncated !== 'boolean') return undefined;
  if (!(m.traceId === null || isString(m.traceId)) || !(m.bodyBytes === null || isInteger(m.bodyBytes))) return undefined;
  if (!Array.isArray(m.headers) || m.headers.length % 2 !== 0 || !m.headers.every(isString)) return undefined;
  if (!Array.isArray(m.replays)) return undefined;
  return meta as unknown as DeadLetterMeta;
}

/** A dead letter's meta in the store's words. */
export function storedMeta(meta: DeadLetterMeta): JsonObject {
  return meta as unknown as JsonObject;
}
