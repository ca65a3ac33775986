import type { ServerResponse } from 'node:http';
import type { H2Response } from './h2c.ts';
import { STATUS_CODES } from '../runtime/node-http.ts';
import type { Duplex } from 'node:stream';
import type { LocalReason, ProxyError } from '../exchange/errors.ts';
import { encodeGrpcMessage, grpcStatusOfReason } from '../exchange/grpc.ts';

export interface LocalReplyContext {
  readonly route: string | undefined;
  readonly upstream: string | undefined;
  readonly requestId: string;
  /** Upstream attempts made before giving up; absent when no route matched. */
  readonly attempts: number | undefined;
  /** The caller made a gRPC call: it is answered in gRPC's terms. */
  readonly grpc?: boolean;
}

function body(reason: LocalReason, message: string, context: LocalReplyContext): string {
  return JSON.stringify({
    error: { reason, message, route: context.route ?? null, upstream: context.upstream ?? null, requestId: context.requestId },
  });
}

/** The grpc-status a gRPC caller gets for `error` (contract section 14). */
export function grpcStatusOfError(error: ProxyError): number {
  return error.grpcStatus ?? grpcStatusOfReason(error.reason, error.status);
}

/**
 * Answers a gRPC caller: HTTP 200 with grpc-status and grpc-message in the head and nothing
 * after it (Trailers-Only), which over HTTP/2 is one HEADERS frame that ends the stream: a
 * gRPC client reads the status from it, not an HTTP error it could only call UNKNOWN or
 * UNAVAILABLE.
 */
function sendGrpcLocalReply(res: ServerResponse | H2Response, error: ProxyError, context: LocalReplyContext): void {
  // The two response kinds take the same calls; node:http's types stand for both.
  const out = res as ServerResponse;
  out.statusCode = 200;
  out.setHeader('content-type', 'application/grpc');
  out.setHeader('grpc-status', String(grpcStatusOfError(error)));
  out.setHeader('grpc-message', encodeGrpcMessage(error.message));
  out.setHeader('x-breakwater-reason', error.reason);
  out.setHeader('x-request-id', context.requestId);
  if (context.attempts !== undefined) out.setHeader('x-breakwater-attempts', String(context.attempts));
  // No writeHead: ended before its head is sent, the response goes out as one head that ends it.
  out.end();
}

/** Writes the JSON error response for a request Breakwater answers itself (a gRPC caller gets a gRPC one). */
export function sendLocalReply(res: ServerResponse | H2Response, error: ProxyError, context: LocalReplyContext, closeConnection = false): void {
  if (context.grpc === true) {
    sendGrpcLocalReply(res, error, context);
    return;
  }
  const payload = body(error.reason, error.message, context);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(payload)),
    'x-breakwater-reason': error.reason,
    'x-request-id': context.requestId,
  };
  if (context.attempts !== undefined) headers['x-breakwater-attempts'] = String(context.attempts);
  if (closeConnection) headers.connection = 'close';
  // The two response kinds take the same calls; node:http's types stand for both.
  (res as ServerResponse).writeHead(error.status, headers).end(payload);
}

/**
 * Answers on the raw socket, then closes it: for a request Node's parser rejected (after a parse
 * error nothing else on that connection can be trusted), and for a CONNECT or an upgrade, which
 * Node hands over as a bare socket. `context`: the route of a WebSocket handshake refused.
 */
export function sendRawLocalReply(socket: Duplex, error: ProxyError, requestId: string, context?: LocalReplyContext): void {
  const payload = body(error.reason, error.message, context ?? { route: undefined, upstream: undefined, requestId, attempts: undefined });
  const attempts = context?.attempts === undefined ? '' : `x-breakwater-attempts: ${context.attempts}\r\n`;
  // A CONNECT is refused as the method it is: RFC 9110 asks a 405 to list what is allowed.
  const allow = error.reason === 'method_not_allowed' ? 'allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE\r\n' : '';
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
      'connection: close\r\n' +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(payload)}\r\n` +
      allow +
      `x-breakwater-reason: ${error.reason}\r\n` +
      attempts +
      `x-request-id: ${requestId}\r\n\r\n` +
      payload,
  );
}

/**
 * Writes a response head on a raw socket: the upstream's answer to a WebSocket handshake (its
 * 101, or the response that refuses it), which Node hands over as a bare socket.
 */
export function writeRawHead(socket: Duplex, status: number, headers: Readonly<Record<string, string | string[]>>): void {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (const name in headers) {
    const value = headers[name]!;
    if (typeof value === 'string') head += `${name}: ${value}\r\n`;
    else for (const one of value) head += `${name}: ${one}\r\n`;
  }
  socket.write(`${head}\r\n`, 'latin1');
}
