// What the telemetry and admin servers share: binding a node:http server to a configured
// address and closing it without waiting on idle keep-alive connections.

import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Address } from '../config/types.ts';

export interface RunningServer {
  /** The bound port: the configured one, or the one the system chose for port 0. */
  readonly port: number;
  /** Stops accepting connections and resolves once open requests have finished. */
  close(): Promise<void>;
}

export function listen(server: Server, address: Address): Promise<RunningServer> {
  const waiting = connectionsWithoutRequest(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((closed, failed) => {
            server.close((error) => (error ? failed(error) : closed()));
            // A scraper or curl may hold a keep-alive connection open indefinitely.
            server.closeIdleConnections();
            // A browser opens connections ahead of the requests it may send (the admin page's
            // does); Node counts those as busy, and would wait for its headers timeout.
            for (const socket of waiting) socket.destroy();
          }),
      });
    });
  });
}

/** The connections of `server` that are open and have not sent a request yet, kept current. */
function connectionsWithoutRequest(server: Server): ReadonlySet<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (req: IncomingMessage) => sockets.delete(req.socket));
  return sockets;
}

export type Method = 'GET' | 'POST';

/** Path → method → handler: the endpoints of a server, in one place. */
export type RouteTable<H> = ReadonlyMap<string, Readonly<Partial<Record<Method, H>>>>;

export type RouteLookup<H> =
  | { readonly kind: 'found'; readonly handler: H }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'wrong-method'; readonly allow: string };

/** Finds the handler of a request; GET endpoints answer HEAD too (node:http omits the body). */
export function lookupRoute<H>(table: RouteTable<H>, req: IncomingMessage): RouteLookup<H> {
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  const methods = table.get(query === -1 ? url : url.slice(0, query));
  if (methods === undefined) return { kind: 'not-found' };
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const handler = method === 'GET' || method === 'POST' ? methods[method] : undefined;
  if (handler !== undefined) return { kind: 'found', handler };
  const allow = Object.keys(methods).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
  return { kind: 'wrong-method', allow: allow.join(', ') };
}
