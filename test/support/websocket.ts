// WebSocket ends for tests: a ws server behind a node:http server as the upstream, and ws
// clients, with the events tests wait on turned into promises.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';

/** How the upstream answers the next handshakes. */
export type HandshakeBehaviour =
  | { readonly kind: 'accept' }
  /** A plain HTTP response instead of the 101. */
  | { readonly kind: 'refuse'; readonly status: number; readonly body: string }
  /** Never answered: the handshake waits until the client or Breakwater gives up. */
  | { readonly kind: 'hold' };

export interface WebSocketUpstream {
  readonly port: number;
  readonly origin: string;
  /** Handshakes received, answered or not. */
  readonly handshakes: IncomingMessage[];
  /** The server side of each accepted WebSocket, in order. */
  readonly accepted: WebSocket[];
  /** Resolves with the server side of the WebSocket whose handshake carried `x-request-id: requestId`. */
  connection(requestId: string): Promise<WebSocket>;
  answer(behaviour: HandshakeBehaviour): void;
  close(): Promise<void>;
}

/** An upstream that echoes every message back as it came (text as text, binary as binary). */
export async function startWebSocketUpstream(): Promise<WebSocketUpstream> {
  const server: Server = createServer((_req, res) => res.writeHead(426, { 'content-length': '0' }).end());
  const wss = new WebSocketServer({ noServer: true });
  const handshakes: IncomingMessage[] = [];
  const accepted: WebSocket[] = [];
  const byRequestId = new Map<string, WebSocket>();
  const waiting = new Map<string, (socket: WebSocket) => void>();
  const sockets = new Set<Duplex>();
  let behaviour: HandshakeBehaviour = { kind: 'accept' };
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    handshakes.push(req);
    socket.on('error', () => undefined);
    if (behaviour.kind === 'hold') return;
    if (behaviour.kind === 'refuse') {
      socket.end(
        `HTTP/1.1 ${behaviour.status} Refused\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(behaviour.body)}\r\nx-refused-by: upstream\r\nconnection: close\r\n\r\n${behaviour.body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data as Buffer, { binary: isBinary }));
      ws.on('error', () => undefined);
      accepted.push(ws);
      const requestId = String(req.headers['x-request-id']);
      byRequestId.set(requestId, ws);
      waiting.get(requestId)?.(ws);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    handshakes,
    accepted,
    connection: (requestId) => {
      const ready = byRequestId.get(requestId);
      return ready !== undefined ? Promise.resolve(ready) : new Promise((resolve) => waiting.set(requestId, resolve));
    },
    answer: (next) => {
      behaviour = next;
    },
    close: async () => {
      for (const ws of accepted) ws.terminate();
      for (const socket of sockets) socket.destroy();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What a client saw of a handshake that got no 101. */
export interface RefusedHandshake {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/**
 * Opens a WebSocket to `url`; resolves with it once open, or with what refused it (a response
 * other than 101). Rejects when the connection fails without a response.
 */
export function openWebSocket(url: string, headers: Record<string, string> = {}): Promise<WebSocket | RefusedHandshake> {
  return new Promise((resolve, reject) => {
    const client = new WebSocket(url, { headers, perMessageDeflate: false });
    client.once('open', () => resolve(client));
    client.once('unexpected-response', (_request, response: IncomingMessage) => {
      let body = '';
      response.setEncoding('latin1');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      response.on('error', reject);
    });
    client.once('error', reject);
  });
}

/** Opens a WebSocket that must open. */
export async function connectWebSocket(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const result = await openWebSocket(url, headers);
  if (!(result instanceof WebSocket)) throw new Error(`handshake refused with ${result.status}: ${result.body}`);
  return result;
}

/** Opens a WebSocket that must be refused, and says how. */
export async function refusedWebSocket(url: string, headers: Record<string, string> = {}): Promise<RefusedHandshake> {
  const result = await openWebSocket(url, headers);
  if (result instanceof WebSocket) {
    result.terminate();
    throw new Error('the handshake was answered with 101');
  }
  return result;
}

/** The next message on `ws`, and whether it came as binary. */
export function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: RawData, binary: boolean) => resolve({ data: data as Buffer, binary })));
}

/** How a WebSocket closed: the code and reason its peer's close frame carried (1006 with none). */
export interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** Resolves when `ws` has closed. */
export function closed(ws: WebSocket): Promise<Closed> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('already closed; wait before it closes'));
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
}
