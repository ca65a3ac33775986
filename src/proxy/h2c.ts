// The HTTP/2 side of a listener: cleartext HTTP/2 with prior knowledge (h2c), on the sockets
// the listener's preface check hands over. Requests arrive through node:http2's compatibility
// API, as request and response objects close to node:http's, so the listener routes and
// answers them with the same code as HTTP/1.1 requests.

import { createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { ConnectionLimits } from '../config/types.ts';

export interface H2cHandlers {
  /** A request: `expectsContinue` when the client waits for 100 Continue before its body. */
  request(req: Http2ServerRequest, res: Http2ServerResponse, expectsContinue: boolean): void;
  /** A CONNECT request, which is refused. */
  connect(req: Http2ServerRequest, res: Http2ServerResponse): void;
}

export interface H2cOptions {
  /** The largest header list a client may send (SETTINGS_MAX_HEADER_LIST_SIZE), as `limits.maxHeaderBytes`. */
  readonly maxHeaderBytes: number;
  readonly limits: ConnectionLimits;
}

/** The HTTP/2 server of one listener, and its open sessions (one per connection). */
export class H2cServer {
  readonly #server: Http2Server;
  readonly #sessions = new Set<Http2Session>();
  #limits: ConnectionLimits;
  #closing = false;

  constructor(options: H2cOptions, handlers: H2cHandlers) {
    this.#limits = options.limits;
    this.#server = createServer({
      // Announced to clients, so a compliant one never sends a larger head; a stream whose head
      // is larger anyway is reset with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED to a gRPC client).
      settings: { maxHeaderListSize: options.maxHeaderBytes },
    });
    this.#server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => handlers.request(req, res, false));
    this.#server.on('checkContinue', (req: Http2ServerRequest, res: Http2ServerResponse) => handlers.request(req, res, true));
    this.#server.on('connect', (req: Http2ServerRequest, res: Http2ServerResponse) => handlers.connect(req, res));
    this.#server.on('session', (session: Http2Session) => this.#opened(session));
    this.#server.on('stream', (stream: ServerHttp2Stream) => this.#countStream(stream));
  }

  /** Serves a connection whose first bytes were the HTTP/2 preface (still unread). */
  accept(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    this.#server.emit('connection', socket);
  }

  /** Open connections. */
  get sessions(): number {
    return this.#sessions.size;
  }

  setLimits(limits: ConnectionLimits): void {
    this.#limits = limits;
  }

  /**
   * Tells every client that no new stream will be accepted (GOAWAY); each connection closes once
   * its streams in flight have ended. Connections that arrive later are closed at once.
   */
  closeIdle(): void {
    this.#closing = true;
    for (const session of this.#sessions) if (!session.closed) session.close();
  }

  /** Closes every connection now, streams in flight included. */
  closeAll(): void {
    this.#closing = true;
    for (const session of this.#sessions) session.destroy();
  }

  #opened(session: Http2Session): void {
    this.#sessions.add(session);
    session.once('close', () => this.#sessions.delete(session));
    // A connection with no frame either way for idleTimeout is told to go away; its streams
    // still open may finish.
    session.setTimeout(this.#limits.idleTimeoutMs, () => session.close());
    // Errors end the session; the streams on it see their own close.
    session.on('error', () => undefined);
    if (this.#closing) session.close();
  }

  /** Ends a connection gracefully once it has carried maxRequestsPerConnection streams. */
  #countStream(stream: ServerHttp2Stream): void {
    const max = this.#limits.maxRequestsPerConnection;
    if (max <= 0) return;
    const session = stream.session;
    if (session === undefined) return;
    const count = (streamsOn.get(session) ?? 0) + 1;
    streamsOn.set(session, count);
    if (count >= max && !session.closed) session.close();
  }
}

/** Streams opened on each session, while maxRequestsPerConnection is set. */
const streamsOn = new WeakMap<Http2Session, number>();
