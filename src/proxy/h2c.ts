// The HTTP/2 side of a listener: cleartext HTTP/2 with prior knowledge (h2c), on the sockets
// the listener's preface check hands over. Requests arrive on node:http2's stream API and are
// handed to the listener as a request and a response close to node:http's (H2Request,
// H2Response), so the listener routes and answers them with the same code as HTTP/1.1 requests.
// They stand in for node:http2's compatibility API, whose request and response objects (a
// readable stream the body is copied through, a response with its own state and listeners)
// are a large share of the CPU and garbage of a unary gRPC call
// (docs/benchmarks/grpc-instructions.md).

import type { Http2Server, Http2Session, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { ConnectionLimits } from '../config/types.ts';

/** An HTTP/2 request as the listener reads it: the fields of node:http's IncomingMessage it uses. */
export class H2Request {
  readonly stream: ServerHttp2Stream;
  /** The header block as it came, pseudo-headers (:method, :path, :authority) included. */
  readonly headers: IncomingHttpHeaders;
  /** The header block as a flat [name, value, ...] list. */
  readonly rawHeaders: string[];
  readonly method: string;
  /** The :path, origin form. */
  readonly url: string;
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  readonly httpVersion = '2.0';

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]) {
    this.stream = stream;
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    this.method = headers[':method'] ?? 'GET';
    this.url = headers[':path'] ?? '/';
  }

  /** The connection the request came on. */
  get socket(): Socket {
    return this.stream.session?.socket ?? detachedSocket;
  }
}

/** What a request on a connection already gone reports as its socket. */
const detachedSocket = { remoteAddress: undefined } as unknown as Socket;

/**
 * The response to an HTTP/2 request, with the calls of node:http's ServerResponse the listener
 * makes. The head goes out at the first write, or with the end: a response ended before any
 * write is one HEADERS frame that ends the stream (a gRPC Trailers-Only response). Otherwise
 * the stream ends with the trailers added, or with an empty DATA frame when there are none.
 */
export class H2Response {
  readonly stream: ServerHttp2Stream;
  statusCode = 200;
  #headers: OutgoingHttpHeaders | null = null;
  #trailers: OutgoingHttpHeaders | null = null;

  constructor(stream: ServerHttp2Stream) {
    this.stream = stream;
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  get writableFinished(): boolean {
    return this.stream.writableFinished;
  }

  setHeader(name: string, value: string | string[]): this {
    (this.#headers ??= {})[name] = value;
    return this;
  }

  getHeader(name: string): string | string[] | number | undefined {
    return this.#headers?.[name];
  }

  /** Sends the head now; `headers` is the response's own from here on. */
  writeHead(status: number, headers?: OutgoingHttpHeaders): this {
    this.statusCode = status;
    if (headers !== undefined) this.#headers = this.#headers === null ? headers : Object.assign(this.#headers, headers);
    this.#respond(false);
    return this;
  }

  writeContinue(): void {
    if (!this.stream.headersSent && !this.stream.destroyed) this.stream.additionalHeaders({ ':status': 100 });
  }

  write(chunk: Buffer | string): boolean {
    if (!this.stream.headersSent) this.#respond(false);
    return this.stream.write(chunk);
  }

  addTrailers(trailers: OutgoingHttpHeaders): void {
    this.#trailers = this.#trailers === null ? trailers : Object.assign(this.#trailers, trailers);
  }

  end(chunk?: Buffer | string): this {
    const stream = this.stream;
    if (stream.destroyed) return this;
    if (chunk !== undefined) this.write(chunk);
    if (!stream.headersSent) this.#respond(true);
    else stream.end();
    return this;
  }

  destroy(error?: Error): void {
    this.stream.destroy(error);
  }

  /** 'drain' and 'close' are the stream's. */
  on(event: 'drain' | 'close', listener: () => void): this {
    this.stream.on(event, listener);
    return this;
  }

  once(event: 'drain' | 'close', listener: () => void): this {
    this.stream.once(event, listener);
    return this;
  }

  off(event: 'drain' | 'close', listener: () => void): this {
    this.stream.off(event, listener);
    return this;
  }

  /**
   * Sends the head as a flat [name, value, ...] list: node:http2 copies a head given as an
   * object into a dictionary of its own, which the stream keeps for its whole life.
   */
  #respond(endStream: boolean): void {
    const stream = this.stream;
    if (stream.destroyed) return;
    const head = [':status', String(this.statusCode)];
    const headers = this.#headers;
    if (headers !== null) {
      for (const name in headers) {
        const value = headers[name];
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const each of value) head.push(name, each);
        else head.push(name, String(value));
      }
    }
    if (endStream) {
      stream.respond(head, { endStream: true });
      return;
    }
    stream.respond(head, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers(this.#trailers ?? {}));
  }
}

export interface H2cHandlers {
  /** A request: `expectsContinue` when the client waits for 100 Continue before its body. */
  request(req: H2Request, res: H2Response, expectsContinue: boolean): void;
  /** A CONNECT request, which is refused. */
  connect(req: H2Request, res: H2Response): void;
  /** A request that expects something other than 100-continue, which is refused. */
  unmetExpectation(req: H2Request, res: H2Response): void;
}

export interface H2cOptions {
  /** The largest header list a client may send (SETTINGS_MAX_HEADER_LIST_SIZE), as `limits.maxHeaderBytes`. */
  readonly maxHeaderBytes: number;
  readonly limits: ConnectionLimits;
}

/** The HTTP/2 server of one listener, and its open sessions (one per connection). */
export class H2cServer {
  readonly #options: H2cOptions;
  readonly #handlers: H2cHandlers;
  // Made at the first HTTP/2 connection: node:http2 (and the TLS code it loads) stays out of
  // the memory of a sidecar that only ever sees HTTP/1.1.
  #server: Http2Server | undefined;
  readonly #sessions = new Set<Http2Session>();
  #limits: ConnectionLimits;
  #closing = false;

  constructor(options: H2cOptions, handlers: H2cHandlers) {
    this.#options = options;
    this.#handlers = handlers;
    this.#limits = options.limits;
  }

  /** Serves a connection whose first bytes were the HTTP/2 preface (still unread). */
  accept(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    (this.#server ??= this.#serve()).emit('connection', socket);
  }

  #serve(): Http2Server {
    const handlers = this.#handlers;
    const server = process.getBuiltinModule('node:http2').createServer({
      // Announced to clients, so a compliant one never sends a larger head; a stream whose head
      // is larger anyway is reset with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED to a gRPC client).
      settings: { maxHeaderListSize: this.#options.maxHeaderBytes },
    });
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      this.#countStream(stream);
      // A stream's errors (a reset by the client) are told to the request by its close.
      stream.on('error', ignore);
      const req = new H2Request(stream, headers, rawHeaders);
      const res = new H2Response(stream);
      if (req.method === 'CONNECT') handlers.connect(req, res);
      else if (headers.expect === undefined) handlers.request(req, res, false);
      else if (headers.expect === '100-continue') handlers.request(req, res, true);
      else handlers.unmetExpectation(req, res);
    });
    server.on('session', (session: Http2Session) => this.#opened(session));
    return server;
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

function ignore(): void {}

/** Streams opened on each session, while maxRequestsPerConnection is set. */
const streamsOn = new WeakMap<Http2Session, number>();
