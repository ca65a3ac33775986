import { connect, type Socket } from 'node:net';

/**
 * What each connection of the flood does once connected:
 * - `half-head`: sends the start of a request head and nothing more (slowloris);
 * - `silent`: sends nothing at all;
 * - `idle`: sends one whole request, reads its answer, then keeps the connection idle.
 */
export type FloodKind = 'half-head' | 'silent' | 'idle';

export interface FloodOptions {
  readonly port: number;
  /** The flood's own address, e.g. 127.0.0.2, so that the listener sees it as one client. */
  readonly localAddress: string;
  readonly kind: FloodKind;
  /** Connections the flood tries to keep open at once; one that closes is replaced. */
  readonly concurrent: number;
  /** Connections opened in all, at most: the flood stops replacing them past it. */
  readonly total: number;
  /** The flood stops replacing connections after this long, then waits for the rest to close. */
  readonly durationMs: number;
  /** Connections still open this long after the flood stopped are closed by the flood itself. */
  readonly giveUpMs: number;
  /** Wait before replacing closed connections, so that refused ones are not retried in a busy loop. */
  readonly paceMs: number;
}

export interface FloodConnection {
  readonly openedAt: number;
  /** When the server closed it; undefined when the flood had to give up on it. */
  closedAt: number | undefined;
  /** What the server sent, as latin1. */
  received: string;
}

export interface Flood {
  /** Resolves once every connection of the flood has closed. */
  readonly done: Promise<readonly FloodConnection[]>;
  /** Connections open right now. */
  readonly open: () => number;
}

const halfHead = 'GET /slow HTTP/1.1\r\nHost: app\r\nUser-Agent: flood\r\n';
const wholeRequest = 'GET /idle HTTP/1.1\r\nHost: app\r\n\r\n';

/**
 * One client that opens connections from `localAddress` and replaces each one the server closes,
 * each doing `kind`, and records how long the server kept each. Bounded: at most `total`
 * connections, and every one is closed by `durationMs + giveUpMs` at the latest.
 */
export function startFlood(options: FloodOptions): Flood {
  const connections: FloodConnection[] = [];
  const open = new Map<Socket, FloodConnection>();
  const startedAt = performance.now();
  let stopped = false;
  let givingUp = false;
  let replaceTimer: NodeJS.Timeout | undefined;
  let settle: (result: readonly FloodConnection[]) => void = () => undefined;
  const done = new Promise<readonly FloodConnection[]>((resolve) => (settle = resolve));

  const finishIfDone = (): void => {
    if (open.size > 0 || !(stopped || connections.length >= options.total)) return;
    clearTimeout(stopTimer);
    clearTimeout(giveUpTimer);
    clearTimeout(replaceTimer);
    settle(connections);
  };

  const openOne = (): void => {
    const record: FloodConnection = { openedAt: performance.now(), closedAt: undefined, received: '' };
    connections.push(record);
    const socket = connect({ host: '127.0.0.1', port: options.port, localAddress: options.localAddress });
    open.set(socket, record);
    socket.on('connect', () => {
      if (options.kind === 'half-head') socket.write(halfHead);
      if (options.kind === 'idle') socket.write(wholeRequest);
    });
    socket.on('data', (chunk: Buffer) => {
      record.received += chunk.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (!givingUp) record.closedAt = performance.now();
      open.delete(socket);
      if (!stopped) replaceTimer ??= setTimeout(fill, options.paceMs);
      finishIfDone();
    });
  };

  function fill(): void {
    replaceTimer = undefined;
    while (!stopped && open.size < options.concurrent && connections.length < options.total) {
      if (performance.now() - startedAt >= options.durationMs) {
        stopped = true;
        break;
      }
      openOne();
    }
    finishIfDone();
  }

  const stopTimer = setTimeout(() => {
    stopped = true;
    clearTimeout(replaceTimer);
    finishIfDone();
  }, options.durationMs);
  // Closed by the flood itself: recorded as never closed by the server.
  const giveUpTimer = setTimeout(() => {
    stopped = true;
    givingUp = true;
    for (const socket of open.keys()) socket.destroy();
  }, options.durationMs + options.giveUpMs);

  fill();
  return { done, open: () => open.size };
}

/** How long the server kept each connection it closed, in ms. */
export function lifetimes(connections: readonly FloodConnection[]): number[] {
  return connections.flatMap((c) => (c.closedAt === undefined ? [] : [c.closedAt - c.openedAt]));
}
