import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { seededRandom } from './seeded-random.ts';

/** A request as the upstream received it. */
export interface SeenRequest {
  /** 1 for the first request this upstream received. */
  readonly index: number;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** Which requests are answered 503: a share of them (0..1, drawn from the seeded random), or a rule. */
export type Failures = number | ((request: SeenRequest) => boolean);

/** Milliseconds to wait before answering: the same for every request, or chosen per request. */
export type Latency = number | ((request: SeenRequest) => number);

export interface FaultyUpstreamOptions {
  /** Seed of the draws that pick the failing requests. */
  readonly seed?: number;
  readonly failures?: Failures;
  readonly latencyMs?: Latency;
}

export interface FaultyUpstream {
  readonly port: number;
  readonly origin: string;
  /** Every request received, in arrival order. */
  readonly requests: readonly SeenRequest[];
  /** TCP connections accepted. */
  readonly connections: number;
  /** Requests received and not yet answered (or abandoned by the client). */
  readonly inFlight: number;
  /** The most requests ever in flight at once. */
  readonly maxInFlight: number;
  /** Changes which requests are answered 503 from now on. */
  fail(failures: Failures): void;
  /** Changes how long requests wait before their answer from now on. */
  delay(latency: Latency): void;
  /**
   * From now on, requests are held: never answered, or answered `afterMs` after they arrived.
   * The latency does not apply to them.
   */
  stall(afterMs?: number): void;
  /** Stops stalling: new requests are answered as usual, and the ones held forever are answered now. */
  resume(): void;
  /** Closes the listening socket and every connection: new connections are refused. */
  outage(): Promise<void>;
  /** Listens again on the same port after an outage. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

interface Held {
  readonly res: ServerResponse;
  readonly answer: () => void;
}

/** Drains the request body, then answers 200 with a small JSON body, or 503 for an injected failure. */
function answer(req: IncomingMessage, res: ServerResponse, seen: SeenRequest, failed: boolean): void {
  if (res.destroyed) return;
  const status = failed ? 503 : 200;
  const payload = JSON.stringify(failed ? { error: 'injected failure', index: seen.index } : { index: seen.index, url: seen.url });
  req.resume();
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

/**
 * An HTTP upstream on 127.0.0.1 with an ephemeral port whose faults can be changed while it
 * runs: a share of 503s from a seeded random, latency, stalls and full outages. Every timer it
 * sets ends with the request it belongs to, and close() clears the rest.
 */
export async function startFaultyUpstream(options: FaultyUpstreamOptions = {}): Promise<FaultyUpstream> {
  const random = seededRandom(options.seed ?? 1);
  let failures: Failures = options.failures ?? 0;
  let latency: Latency = options.latencyMs ?? 0;
  let stall: { afterMs: number | undefined } | null = null;
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const heldForever = new Set<Held>();
  let connections = 0;
  let inFlight = 0;
  let maxInFlight = 0;

  function later(ms: number, res: ServerResponse, fire: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fire();
    }, ms);
    timers.add(timer);
    res.once('close', () => {
      clearTimeout(timer);
      timers.delete(timer);
    });
  }

  const server: Server = createServer((req, res) => {
    const seen: SeenRequest = { index: requests.length + 1, method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    requests.push(seen);
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.once('close', () => {
      inFlight -= 1;
    });
    // Drawn on arrival, so the sequence of failures follows the seed whatever the latency.
    const failed = typeof failures === 'number' ? random() < failures : failures(seen);
    const reply = (): void => answer(req, res, seen, failed);
    if (stall !== null) {
      if (stall.afterMs !== undefined) {
        later(stall.afterMs, res, reply);
        return;
      }
      const held: Held = { res, answer: reply };
      heldForever.add(held);
      res.once('close', () => heldForever.delete(held));
      return;
    }
    const waitMs = typeof latency === 'number' ? latency : latency(seen);
    if (waitMs > 0) later(waitMs, res, reply);
    else reply();
  });
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  function listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  function shut(): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    return closed;
  }

  const port = await listen(0);
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    requests,
    get connections() {
      return connections;
    },
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    fail(next) {
      failures = next;
    },
    delay(next) {
      latency = next;
    },
    stall(afterMs) {
      stall = { afterMs };
    },
    resume() {
      stall = null;
      for (const held of [...heldForever]) {
        heldForever.delete(held);
        held.answer();
      }
    },
    outage: shut,
    async restore() {
      await listen(port);
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      heldForever.clear();
      if (server.listening) await shut();
      else for (const socket of sockets) socket.destroy();
    },
  };
}
