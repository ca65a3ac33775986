// WebSocket handshakes on a listener, and the tunnels they open. A handshake (HTTP/1.1
// `Upgrade: websocket`) is routed like any request and sent through its route's handshake
// layers (src/stack/build.ts) under the route's deadline; an upstream's 101 is passed to the
// client and the two connections are joined (tunnel.ts); any other answer, the upstream's or
// Breakwater's own, is written on the client's connection, which then closes.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Sender } from 'ws';
import type { Config, WebSocketConfig } from '../../config/types.ts';
import { endToEndHeaders } from '../../exchange/headers.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type CallScope, type Handler } from '../../exchange/handler.ts';
import type { RequestRecord, TunnelRecord } from '../../exchange/record.ts';
import type { ProxyRequest, RequestTrace, RequestTracer, UpstreamResponse, UpstreamTunnel } from '../../exchange/request.ts';
import { deadlineExceeded, deadlineReached, requestDeadline } from '../../policies/deadline/deadline.ts';
import { absoluteForm, type Router } from '../../routing/match.ts';
import type { Clock } from '../../runtime/clock.ts';
import { callerTraceId, clientResponseHeaders, upstreamHeaders } from '../headers.ts';
import { sendRawLocalReply, writeRawHead } from '../local-reply.ts';
import { Tunnel } from './tunnel.ts';

/** What a handshake needs of a route. */
export interface HandshakeRoute {
  readonly name: string;
  readonly upstream: string;
  readonly timeoutMs: number;
  readonly handshake: Handler;
  readonly websocket: WebSocketConfig;
}

/** What a handshake needs of the running config; it keeps the one it started with. */
export interface HandshakeState {
  readonly config: Pick<Config, 'deadline'>;
  readonly router: Router<HandshakeRoute>;
  readonly consumedHeaders: ReadonlySet<string>;
}

/** Where a handshake's and a tunnel's records go. */
export interface WebSocketObserver {
  /** A handshake answered with anything but a 101 (an upstream's refusal, a local reply), or whose client left. */
  requestFinished(record: RequestRecord): void;
  /** A handshake answered with the upstream's 101: the request is over, and its tunnel open. */
  tunnelOpened(record: RequestRecord): void;
  /** The tunnel of `record` has closed: the WebSocket's access-log line. */
  tunnelClosed(record: TunnelRecord): void;
}

export interface WebSocketOptions {
  readonly listener: string;
  readonly clock: Clock;
  readonly state: () => HandshakeState;
  readonly observer: WebSocketObserver;
  readonly events: PolicyEvents;
  /** Undefined while tracing is off. */
  readonly tracer: RequestTracer | undefined;
  readonly maxConcurrent: number | undefined;
  /** The listener's count of requests in flight, which a handshake is part of until it is answered. */
  readonly requests: {
    /** Counts one in; returns how many are in flight now, this one included. */
    started(): number;
    finished(): void;
  };
}

/** True when an upgrade asks for WebSocket (RFC 6455 4.1: `Upgrade: websocket`, in any case). */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return upgrade !== undefined && /(?:^|,)\s*websocket\s*(?:,|$)/i.test(upgrade);
}

/** Status logged when the client went away before it was answered (as nginx does). */
const clientClosedStatus = 499;

/**
 * After an answer that refuses a handshake, how long the client gets to read it before the
 * connection is closed (a lingering close, as the listener does for its other raw answers).
 */
const lingerMs = 2000;

/** A listener's WebSocket handshakes and open tunnels. */
export class WebSocketUpgrades {
  readonly #options: WebSocketOptions;
  readonly #tunnels = new Set<Tunnel>();
  // ws is loaded with the first handshake: its entry point loads node:https and Node's TLS code,
  // which a sidecar that never carries a WebSocket does without.
  #sender: typeof Sender | undefined;
  #senderLoaded: Promise<void> | undefined;

  constructor(options: WebSocketOptions) {
    this.#options = options;
  }

  /** Tunnels open now. */
  get open(): number {
    return this.#tunnels.size;
  }

  /** Closes every open tunnel with a close frame 1001 to both sides; returns how many there were. */
  closeAll(): number {
    for (const tunnel of this.#tunnels) tunnel.close('drain');
    return this.#tunnels.size;
  }

  /** Takes a handshake Node handed over as an `upgrade`: `head` is what the client sent after its head. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#sender !== undefined) {
      new Handshake(this.#options, this.#tunnels, this.#sender, req, socket, head).run();
      return;
    }
    this.#senderLoaded ??= import('ws').then(({ Sender }) => {
      this.#sender = Sender;
    });
    this.#senderLoaded.then(
      () => {
        // A client gone while ws loaded sent no request that needs an answer.
        if (!socket.destroyed) this.handle(req, socket, head);
      },
      (error: unknown) => socket.destroy(error instanceof Error ? error : undefined),
    );
  }
}

/** One handshake, from its head to its answer, and the tunnel a 101 opens. */
class Handshake {
  readonly #options: WebSocketOptions;
  readonly #tunnels: Set<Tunnel>;
  readonly #sender: typeof Sender;
  readonly #req: IncomingMessage;
  readonly #socket: Duplex;
  readonly #startedAt: number;
  readonly #requestId: string;
  readonly #trace: RequestTrace | undefined;
  #path: string;
  #route: HandshakeRoute | undefined;
  #request: ProxyRequest | undefined;
  /** Set once the client's answer has begun (or it has gone): no other answer may follow. */
  #answered = false;
  /** Set once the handshake's record is written. */
  #recorded = false;
  readonly #controller = new AbortController();
  #cancelTimer: (() => void) | undefined;
  readonly #clientGone = (): void => this.#clientClosed();

  constructor(options: WebSocketOptions, tunnels: Set<Tunnel>, sender: typeof Sender, req: IncomingMessage, socket: Duplex, head: Buffer) {
    this.#options = options;
    this.#tunnels = tunnels;
    this.#sender = sender;
    this.#req = req;
    this.#socket = socket;
    this.#startedAt = options.clock.now();
    const incomingId = req.headers['x-request-id'];
    this.#requestId = typeof incomingId === 'string' && incomingId !== '' ? incomingId : randomUUID();
    this.#trace = options.tracer?.startRequest(req, options.listener);
    this.#path = req.url ?? '/';
    // Node no longer listens on an upgraded socket: without this, a reset would be thrown.
    socket.on('error', () => undefined);
    // Bytes the client sent after its head belong to the WebSocket, once there is one.
    if (head.length > 0) socket.unshift(head);
  }

  run(): void {
    const options = this.#options;
    const req = this.#req;
    const inFlight = options.requests.started();
    this.#socket.once('close', this.#clientGone);
    const state = options.state();
    const method = req.method ?? 'GET';
    let host = req.headers.host ?? '';
    // RFC 9112 3.2: an HTTP/1.1 request without Host is refused, whatever its target's form.
    if (req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
      this.#refuse(new ProxyError('bad_request', { message: 'an HTTP/1.1 request needs a Host header' }));
      return;
    }
    if (this.#path.charCodeAt(0) !== 47 /* '/' */) {
      const parts = absoluteForm.exec(this.#path);
      if (parts === null) {
        this.#refuse(new ProxyError('bad_request', { message: 'unsupported request target' }));
        return;
      }
      host = parts[1]!;
      this.#path = parts[2] === '' ? '/' : parts[2]!;
    }
    const route = state.router.match(options.listener, { method, host, path: this.#path, headers: req.headers });
    if (route === undefined) {
      this.#refuse(new ProxyError('no_route'));
      return;
    }
    this.#route = route;
    if (options.maxConcurrent !== undefined && inFlight > options.maxConcurrent) {
      this.#refuse(new ProxyError('bulkhead_full', { message: `listener ${options.listener} is at its limit of ${options.maxConcurrent} concurrent requests` }));
      return;
    }
    const deadline = requestDeadline(route.timeoutMs, req.headers, state.config.deadline);
    if (deadline.kind === 'spent') {
      this.#refuse(deadlineExceeded(options.events, 'arrival', "the caller's deadline was already spent on arrival", { route: route.name, upstream: route.upstream }));
      return;
    }
    const request: ProxyRequest = {
      listener: options.listener,
      route: route.name,
      upstream: route.upstream,
      method,
      path: this.#path,
      headers: upstreamHeaders(req, { host, requestId: this.#requestId, consumed: state.consumedHeaders }),
      body: null,
      requestId: this.#requestId,
      startedAt: this.#startedAt,
      deadlineAt: this.#startedAt + deadline.lifetimeMs,
      attempts: 0,
      tried: [],
      trace: this.#trace,
      upgrade: 'websocket',
    };
    this.#request = request;
    const scope: CallScope = { signal: this.#controller.signal, dueAt: request.deadlineAt };
    // The deadline bounds the handshake only: a 101 cancels it, and the tunnel's own bounds follow.
    this.#cancelTimer = options.clock.setTimer(deadline.lifetimeMs, () => {
      this.#controller.abort(deadlineReached(options.events, request, deadline, false));
    });
    callHandler(route.handshake, request, scope).then(
      (response) => this.#upstreamAnswered(response),
      (error: unknown) => {
        this.#cancelTimer?.();
        this.#refuse(error instanceof ProxyError ? error : new ProxyError('upstream_unavailable', { cause: error }));
      },
    );
  }

  #upstreamAnswered(response: UpstreamResponse): void {
    this.#cancelTimer?.();
    const tunnel = response.tunnel;
    if (this.#answered) {
      // The client left while the upstream answered.
      response.body.discard();
      if (tunnel !== undefined) {
        tunnel.socket.destroy();
        tunnel.release();
      }
      return;
    }
    if (tunnel !== undefined) {
      this.#open(response, tunnel);
      return;
    }
    // The upstream refused the handshake: its answer passes as it is, and the connection closes.
    const socket = this.#socket;
    this.#answered = true;
    const headers = clientResponseHeaders(response.headers, this.#request!.attempts, this.#requestId);
    headers.connection = 'close';
    writeRawHead(socket, response.status, headers);
    response.body.pipeTo(socket).then(
      () => {
        this.#linger();
        this.#record(response.status, undefined);
      },
      (error: unknown) => {
        socket.destroy();
        this.#record(response.status, error instanceof ProxyError ? error : undefined);
      },
    );
  }

  /** Passes the upstream's 101 to the client and joins the two connections. */
  #open(response: UpstreamResponse, upstream: UpstreamTunnel): void {
    const options = this.#options;
    const client = this.#socket;
    const route = this.#route!;
    this.#answered = true;
    client.off('close', this.#clientGone);
    const headers = endToEndHeaders(response.headers);
    headers.connection = 'Upgrade';
    headers.upgrade = response.headers.upgrade ?? 'websocket';
    headers['x-breakwater-attempts'] = String(this.#request!.attempts);
    headers['x-request-id'] = this.#requestId;
    writeRawHead(client, response.status, headers);
    // The 101 has no body: this ends what the handshake held (a bulkhead slot, an attempt's scope).
    response.body.discard();
    const opened = this.#record(response.status, undefined, true);
    // The tunnel may live for hours: what it needs when it closes is taken out of the handshake,
    // so that the handshake's request and headers are not kept alive with it.
    const tunnels = this.#tunnels;
    const startedAt = this.#startedAt;
    const clock = options.clock;
    const observer = options.observer;
    const tunnel = new Tunnel(client, upstream.socket, {
      clock,
      bounds: route.websocket,
      sender: this.#sender,
      onClosed: (summary) => {
        tunnels.delete(tunnel);
        upstream.release();
        observer.tunnelClosed({ ...opened, protocol: 'websocket', durationMs: clock.now() - startedAt, handshakeMs: opened.durationMs, ...summary });
      },
    });
    this.#tunnels.add(tunnel);
    tunnel.start();
  }

  /** Answers with Breakwater's own reply, and closes the connection. */
  #refuse(error: ProxyError): void {
    if (this.#answered) return;
    this.#answered = true;
    const route = this.#route;
    sendRawLocalReply(this.#socket, error, this.#requestId, {
      route: route?.name,
      upstream: route?.upstream,
      requestId: this.#requestId,
      attempts: route === undefined ? undefined : (this.#request?.attempts ?? 0),
    });
    this.#linger();
    this.#record(error.status, error);
  }

  /** Whatever the client still sends is read and dropped until it closes, or the linger ends. */
  #linger(): void {
    const socket = this.#socket;
    socket.resume();
    const cancel = this.#options.clock.setTimer(lingerMs, () => socket.destroy());
    socket.once('close', cancel);
  }

  /** The client's connection closed before the handshake was over: whatever still runs for it stops. */
  #clientClosed(): void {
    if (this.#recorded) return;
    this.#cancelTimer?.();
    // Cuts an answer still streaming short too; its record follows when it fails.
    this.#controller.abort(new ProxyError('upstream_unavailable', { message: 'the client closed the connection' }));
    if (this.#answered) return;
    this.#answered = true;
    this.#record(clientClosedStatus, undefined);
  }

  /** The handshake's record, told to the observer and the trace; `opened`: its tunnel opened. */
  #record(status: number, failure: ProxyError | undefined, opened = false): RequestRecord {
    const options = this.#options;
    const route = this.#route;
    const trace = this.#trace;
    const gone = status === clientClosedStatus;
    this.#recorded = true;
    const record: RequestRecord = {
      listener: options.listener,
      route: route?.name,
      upstream: route?.upstream,
      method: this.#req.method ?? '',
      path: this.#path,
      status,
      grpcStatus: undefined,
      reason: gone ? 'client_closed' : failure?.reason,
      detail: gone ? undefined : failure?.message,
      fallback: undefined,
      durationMs: options.clock.now() - this.#startedAt,
      attempts: this.#request?.attempts ?? 0,
      requestId: this.#requestId,
      // With tracing off, the caller's trace id still joins the log line to its trace.
      traceId: trace === undefined ? callerTraceId(this.#req.headers.traceparent) : trace.traceId,
      spanId: trace?.spanId,
      protocol: 'websocket',
    };
    options.requests.finished();
    trace?.end(record);
    if (opened) options.observer.tunnelOpened(record);
    else options.observer.requestFinished(record);
    return record;
  }
}
