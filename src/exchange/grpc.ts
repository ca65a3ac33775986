// gRPC in the request's vocabulary: which requests are gRPC calls, how a call's outcome is read
// (its grpc-status), the status codes by name, and what a gRPC caller is told when Breakwater
// answers itself. gRPC over HTTP/2 is described in grpc/grpc doc/PROTOCOL-HTTP2.md.

import type { GrpcCondition } from '../config/types.ts';
import type { LocalReason } from './errors.ts';

/** The gRPC status codes (grpc/grpc doc/statuscodes.md), by their canonical names. */
export const grpcCodes = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcCodeName = keyof typeof grpcCodes;

const namesByCode: readonly GrpcCodeName[] = Object.keys(grpcCodes) as GrpcCodeName[];

/** The canonical name of a status code (`UNAVAILABLE`), or the number as text for one outside the list. */
export function grpcCodeName(code: number): string {
  return namesByCode[code] ?? String(code);
}

/**
 * The gRPC status names `retryOn` and `failOn` accept, as Envoy's `retry_on` spells them, and
 * their codes. These are the statuses a server or a proxy returns for a call that may succeed
 * when made again.
 */
export const grpcConditions: Readonly<Record<GrpcCondition, number>> = {
  cancelled: grpcCodes.CANCELLED,
  'deadline-exceeded': grpcCodes.DEADLINE_EXCEEDED,
  'resource-exhausted': grpcCodes.RESOURCE_EXHAUSTED,
  internal: grpcCodes.INTERNAL,
  unavailable: grpcCodes.UNAVAILABLE,
};

export function isGrpcCondition(value: unknown): value is GrpcCondition {
  return typeof value === 'string' && Object.hasOwn(grpcConditions, value);
}

/** True when a list of retryOn or failOn conditions names a gRPC status. */
export function namesGrpcCondition(conditions: readonly unknown[]): boolean {
  return conditions.some(isGrpcCondition);
}

/**
 * The statuses `5xx` stands for when a gRPC call answers with one: those whose HTTP equivalent
 * is a server error in Envoy's mapping (grpcToHttpStatus), as its outlier detection judges gRPC
 * calls. UNIMPLEMENTED (501 there) is left out: gRPC's own HTTP mapping gives it to a 404, the
 * caller asking for a method the server does not have, which says nothing of the server's health.
 */
const serverErrorCodes: ReadonlySet<number> = new Set([grpcCodes.UNKNOWN, grpcCodes.DEADLINE_EXCEEDED, grpcCodes.INTERNAL, grpcCodes.UNAVAILABLE, grpcCodes.DATA_LOSS]);

/** True when a gRPC status is a server error, as `5xx` counts it. */
export function isGrpcServerError(code: number): boolean {
  return serverErrorCodes.has(code);
}

/** True for a request whose content-type is `application/grpc` or `application/grpc+...`. */
export function isGrpcContentType(value: string | string[] | undefined): boolean {
  if (typeof value !== 'string' || value.length < 16) return false;
  // The common case first, without lower-casing.
  if (value.startsWith('application/grpc')) return value.length === 16 || value.charCodeAt(16) === 43 /* + */ || value.charCodeAt(16) === 59 /* ; */;
  const lower = value.toLowerCase();
  return lower.startsWith('application/grpc') && (lower.length === 16 || lower[16] === '+' || lower[16] === ';');
}

/**
 * The grpc-status in a set of headers or trailers, or undefined when there is none or it is not
 * a number. A code outside the 17 gRPC defines is UNKNOWN, as a gRPC client reads it.
 */
export function grpcStatusIn(headers: Readonly<Record<string, string | string[] | undefined>> | undefined): number | undefined {
  const value = headers?.['grpc-status'];
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d{1,3}$/.test(text.trim())) return undefined;
  const code = Number(text.trim());
  return code <= grpcCodes.UNAUTHENTICATED ? code : grpcCodes.UNKNOWN;
}

/**
 * The status a gRPC client reports for an HTTP response without grpc-status (gRPC's
 * doc/http-grpc-status-mapping.md): a proxy or server in the way answered with plain HTTP.
 */
export function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 400:
      return grpcCodes.INTERNAL;
    case 401:
      return grpcCodes.UNAUTHENTICATED;
    case 403:
      return grpcCodes.PERMISSION_DENIED;
    case 404:
      return grpcCodes.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return grpcCodes.UNAVAILABLE;
    default:
      return grpcCodes.UNKNOWN;
  }
}

/**
 * What a gRPC caller is told for each reply Breakwater makes itself (contract section 14).
 * An expired deadline or timeout is DEADLINE_EXCEEDED, never UNAVAILABLE: a client retries
 * UNAVAILABLE, and a call whose deadline has passed must not be made again. Reasons not listed
 * take the status of their HTTP status in gRPC's own mapping.
 */
const statusByReason: Partial<Record<LocalReason, number>> = {
  deadline_exceeded: grpcCodes.DEADLINE_EXCEEDED,
  timeout: grpcCodes.DEADLINE_EXCEEDED,
  circuit_open: grpcCodes.UNAVAILABLE,
  bulkhead_full: grpcCodes.UNAVAILABLE,
  upstream_unavailable: grpcCodes.UNAVAILABLE,
  upstream_invalid_response: grpcCodes.UNAVAILABLE,
  no_route: grpcCodes.UNIMPLEMENTED,
  payload_too_large: grpcCodes.RESOURCE_EXHAUSTED,
  headers_too_large: grpcCodes.RESOURCE_EXHAUSTED,
  fault_injected: grpcCodes.UNAVAILABLE,
};

/** The gRPC status of a reply Breakwater makes for `reason` (with HTTP status `status`). */
export function grpcStatusOfReason(reason: LocalReason, status: number): number {
  return statusByReason[reason] ?? grpcStatusOfHttp(status);
}

/**
 * A grpc-message value: percent-encoded UTF-8, every byte outside printable ASCII and `%`
 * itself escaped, as PROTOCOL-HTTP2.md asks.
 */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * A `grpc-timeout` value for `ms` milliseconds: at most 8 digits, in the finest unit that
 * holds it, rounded down so the upstream is never told it has more time than it has.
 */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.floor(ms));
  if (whole <= 99_999_999) return `${whole}m`;
  const seconds = Math.floor(whole / 1000);
  if (seconds <= 99_999_999) return `${seconds}S`;
  return `${Math.min(99_999_999, Math.floor(seconds / 3600))}H`;
}

/** The service and method of a gRPC call from its path (`/package.Service/Method`), or undefined for another path. */
export function grpcMethodOf(path: string): { readonly service: string; readonly method: string } | undefined {
  const query = path.indexOf('?');
  const clean = query === -1 ? path : path.slice(0, query);
  const slash = clean.indexOf('/', 1);
  if (clean.charCodeAt(0) !== 47 || slash === -1 || slash === clean.length - 1 || clean.indexOf('/', slash + 1) !== -1) return undefined;
  return { service: clean.slice(1, slash), method: clean.slice(slash + 1) };
}
