import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from '../runtime/node-http.ts';
import type { Duplex } from 'node:stream';
import type { LocalReason, ProxyError } from '../exchange/errors.ts';

export interface LocalReplyContext {
  readonly route: string | undefined;
  readonly upstream: string | undefined;
  readonly requestId: string;
  /** Upstream attempts made before giving up; absent when no route matched. */
  readonly attempts: number | undefined;
}

function body(reason: LocalReason, message: string, context: LocalReplyContext): string {
  return JSON.stringify({
    error: { reason, message, route: context.route ?? null, upstream: context.upstream ?? null, requestId: context.requestId },
  });
}

/** Writes the JSON error response for a request Breakwater answers itself. */
export function sendLocalReply(res: ServerResponse, error: ProxyError, context: LocalReplyContext, closeConnection = false): void {
  const payload = body(error.reason, error.message, context);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(payload)),
    'x-breakwater-reason': error.reason,
    'x-request-id': context.requestId,
  };
  if (context.attempts !== undefined) headers['x-breakwater-attempts'] = String(context.attempts);
  if (closeConnection) headers.connection = 'close';
  res.writeHead(error.status, headers);
  res.end(payload);
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
