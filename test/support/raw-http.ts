import { connect } from 'node:net';

export interface RawExchange {
  /** Everything the server sent before closing or the wait ending. */
  readonly text: string;
  /** True when the server closed the connection. */
  readonly closed: boolean;
}

/**
 * Writes `payload` on a fresh TCP connection and collects the answer until the server closes
 * the connection, or `waitMs` passes after the last byte received.
 */
export function rawRequest(port: number, payload: string, waitMs = 2000): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), waitMs);
    };
    socket.on('connect', () => {
      socket.write(payload);
      arm();
    });
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      arm();
    });
    socket.on('end', () => finish(true));
    socket.on('error', (error) => (text === '' ? reject(error) : finish(true)));
  });
}

export interface RawResponse {
  readonly status: number;
  /** Lower-cased names; the last value of a repeated header. */
  readonly headers: Readonly<Record<string, string>>;
  readonly head: string;
  readonly body: string;
}

export interface ParsedStream {
  readonly responses: readonly RawResponse[];
  /** Bytes after the last whole response: a cut-short response, or anything that is not one. */
  readonly rest: string;
}

/**
 * Splits what a server sent on one connection into responses, framed by Content-Length or
 * chunked encoding; anything else is left in `rest`. With `head`, the request was a HEAD: a
 * response has no body, unless one that does not look like a response follows (an answer
 * written before the method was known, as for a request the parser refused).
 */
export function parseResponses(text: string, options: { head?: boolean } = {}): ParsedStream {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    const statusLine = /^HTTP\/1\.[01] (\d{3}) [^\r\n]*\r\n/.exec(text.slice(at, at + 200));
    if (headEnd < 0 || statusLine === null) break;
    const head = text.slice(at, headEnd + 4);
    const headers: Record<string, string> = {};
    for (const line of head.split('\r\n').slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(statusLine[1]);
    let bodyEnd: number;
    const declared = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
    if (status < 200 || status === 204 || status === 304) {
      bodyEnd = headEnd + 4;
    } else if (options.head === true) {
      const after = text.slice(headEnd + 4);
      bodyEnd = headEnd + 4 + (declared !== undefined && after.length >= declared && !after.startsWith('HTTP/') ? declared : 0);
    } else if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      let cursor = headEnd + 4;
      let complete = false;
      for (;;) {
        const lineEnd = text.indexOf('\r\n', cursor);
        if (lineEnd < 0) break;
        const size = Number.parseInt(text.slice(cursor, lineEnd), 16);
        if (!Number.isFinite(size)) break;
        cursor = lineEnd + 2 + size + 2;
        if (size === 0) {
          complete = cursor <= text.length;
          break;
        }
      }
      if (!complete) break;
      bodyEnd = cursor;
    } else if (headers['content-length'] !== undefined) {
      bodyEnd = headEnd + 4 + Number(headers['content-length']);
      if (bodyEnd > text.length) break;
    } else {
      // Delimited by the connection's close: the rest is its body.
      bodyEnd = text.length;
    }
    responses.push({ status, headers, head, body: text.slice(headEnd + 4, bodyEnd) });
    at = bodyEnd;
  }
  return { responses, rest: text.slice(at) };
}
