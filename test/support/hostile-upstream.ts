import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * How the upstream answers, chosen by the last segment of the request path:
 * - `ok`: a small 200;
 * - `big-headers`: a 200 whose headers are 100 KiB;
 * - `bad-status`: a status line that is not one (`HTTP/1.1 2x0 WHAT`);
 * - `not-http`: bytes that are not HTTP at all;
 * - `continue`: an unasked `100 Continue`, then a 200;
 * - `hints`: two `103 Early Hints`, then a 200;
 * - `flood-1xx`: `103 Early Hints` without end;
 * - `trickle-head`: a response head, one byte every `trickleMs`;
 * - `trickle-body`: a head, then the body one byte every `trickleMs`;
 * - `never-ends`: a chunked body written as fast as the connection takes it, without end;
 * - `stall-body`: a head and part of the body, then nothing.
 */
export type Hostility =
  | 'ok'
  | 'big-headers'
  | 'bad-status'
  | 'not-http'
  | 'continue'
  | 'hints'
  | 'flood-1xx'
  | 'trickle-head'
  | 'trickle-body'
  | 'never-ends'
  | 'stall-body';

export interface HostileUpstream {
  readonly origin: string;
  /** Connections open right now. */
  readonly open: () => number;
  /** Requests received, by hostility. */
  readonly received: () => Readonly<Record<string, number>>;
  /** Body bytes the `never-ends` responses managed to hand to their connections, in all. */
  readonly endlessBytes: () => number;
  close(): Promise<void>;
}

const trickleMs = 100;
const okResponse = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok';

/**
 * A raw-socket HTTP/1.1 upstream on 127.0.0.1 that misbehaves on purpose, one way per request
 * path. Every connection answers one request; every timer it sets ends with its connection.
 */
export async function startHostileUpstream(): Promise<HostileUpstream> {
  const sockets = new Set<Socket>();
  const received: Record<string, number> = {};
  const endless = { bytes: 0 };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const timers = new Set<NodeJS.Timeout>();
    socket.on('close', () => {
      sockets.delete(socket);
      for (const timer of timers) clearInterval(timer);
    });
    socket.on('error', () => undefined);
    const every = (ms: number, tick: () => void): void => {
      timers.add(setInterval(tick, ms));
    };
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.resume();
      const path = /^[A-Z]+ (\S+) /.exec(head)?.[1] ?? '/';
      const hostility = (path.split('?')[0]!.split('/').pop() ?? 'ok') as Hostility;
      received[hostility] = (received[hostility] ?? 0) + 1;
      answer(socket, hostility, every, endless);
    };
    socket.on('data', onData);
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    open: () => sockets.size,
    received: () => ({ ...received }),
    endlessBytes: () => endless.bytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function answer(socket: Socket, hostility: Hostility, every: (ms: number, tick: () => void) => void, endless: { bytes: number }): void {
  switch (hostility) {
    case 'big-headers':
      socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(100 * 1024)}\r\ncontent-length: 2\r\n\r\nok`);
      return;
    case 'bad-status':
      socket.write('HTTP/1.1 2x0 WHAT\r\ncontent-length: 2\r\n\r\nok');
      return;
    case 'not-http':
      socket.write('\u0000\u0001 this is not HTTP\r\n\r\n');
      return;
    case 'continue':
      socket.end(`HTTP/1.1 100 Continue\r\n\r\n${okResponse}`);
      return;
    case 'hints':
      socket.end(`HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </b.css>\r\n\r\n${okResponse}`);
      return;
    case 'flood-1xx':
      every(1, () => socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n'.repeat(10)));
      return;
    case 'trickle-head': {
      const bytes = [...okResponse];
      every(trickleMs, () => socket.write(bytes.shift() ?? ''));
      return;
    }
    case 'trickle-body': {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n');
      every(trickleMs, () => socket.write('x'));
      return;
    }
    case 'never-ends': {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n');
      const chunk = `10000\r\n${'x'.repeat(0x10000)}\r\n`;
      // As fast as the connection takes it: write until the socket's buffer is full, then wait.
      const pump = (): void => {
        let more = true;
        while (more && !socket.destroyed) {
          more = socket.write(chunk);
          endless.bytes += chunk.length;
        }
      };
      socket.on('drain', pump);
      pump();
      return;
    }
    case 'stall-body':
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\nthe first part');
      return;
    default:
      socket.end(okResponse);
  }
}
