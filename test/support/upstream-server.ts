import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly bodyBytes: number;
  readonly body: Buffer;
}

export type Behaviour = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

export interface UpstreamServer {
  readonly port: number;
  readonly origin: string;
  readonly requests: ReceivedRequest[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Replaces how the server answers from now on. */
  respond(behaviour: Behaviour): void;
  close(): Promise<void>;
}

/** Answers 200 with a small JSON body naming the request. */
export const echo: Behaviour = (req, res, body) => {
  const payload = JSON.stringify({ method: req.method, url: req.url, bodyBytes: body.length });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
};

/**
 * A scripted upstream on 127.0.0.1 with an ephemeral port that records what it receives.
 * `keepBody: false` counts body bytes without keeping them (for large uploads).
 */
export async function startUpstream(
  behaviour: Behaviour = echo,
  options: { keepBody?: boolean; host?: string; port?: number } = {},
): Promise<UpstreamServer> {
  const host = options.host ?? '127.0.0.1';
  const keepBody = options.keepBody ?? true;
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  let current = behaviour;
  let connections = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
      if (keepBody) chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes, body });
      current(req, res, body);
    });
  });
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `http://${host}:${port}`,
    requests,
    get connections() {
      return connections;
    },
    respond(next) {
      current = next;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
