import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { localReasons, type LocalReason, type ProxyError } from '../exchange/errors.ts';

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
 * Answers a request Node's parser rejected (malformed, or headers too large) on the raw
 * socket, then closes it: after a parse error nothing else on that connection can be trusted.
 */
export function sendRawLocalReply(socket: Socket, reason: LocalReason, requestId: string): void {
  const { status, message } = localReasons[reason];
  const payload = body(reason, message, { route: undefined, upstream: undefined, requestId, attempts: undefined });
  const statusText = status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${status} ${statusText}\r\n` +
      'connection: close\r\n' +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(payload)}\r\n` +
      `x-breakwater-reason: ${reason}\r\n` +
      `x-request-id: ${requestId}\r\n\r\n` +
      payload,
  );
}
