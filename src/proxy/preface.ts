// Which protocol a new connection speaks, told by its first bytes. An HTTP/2 client with prior
// knowledge (h2c, RFC 9113 section 3.3) opens with a fixed preface that no HTTP/1.1 request
// can begin with, so one port serves both.

import type { Socket } from 'node:net';

/** The client connection preface of HTTP/2 (RFC 9113 section 3.4). */
export const h2cPreface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export type ConnectionProtocol = 'http1' | 'h2c';

/** What the bytes so far say: h2c once all of the preface is there, http1 at the first byte that differs. */
export function protocolOf(bytes: Buffer): ConnectionProtocol | undefined {
  const length = Math.min(bytes.length, h2cPreface.length);
  for (let i = 0; i < length; i++) if (bytes[i] !== h2cPreface[i]) return 'http1';
  return length === h2cPreface.length ? 'h2c' : undefined;
}

/**
 * Reads a connection's first bytes until they tell its protocol, puts them back, and calls
 * `decided` with the socket paused, its bytes unread: the server it is handed to reads them as
 * if it had been first. `silent` is called instead when the client sends nothing for
 * `timeoutMs`; a client that closes first is neither.
 */
export function sortConnection(socket: Socket, timeoutMs: number, decided: (protocol: ConnectionProtocol) => void, silent: () => void): void {
  let seen: Buffer | undefined;
  const onData = (chunk: Buffer): void => {
    const bytes = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    const protocol = protocolOf(bytes);
    if (protocol === undefined) {
      seen = bytes;
      return;
    }
    socket.off('data', onData);
    socket.off('timeout', onTimeout);
    socket.off('error', onError);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(bytes);
    decided(protocol);
  };
  const onTimeout = (): void => {
    socket.off('data', onData);
    silent();
  };
  // A reset before the first bytes: the socket closes, and its close is all there is to tell.
  const onError = (): void => {
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.setTimeout(timeoutMs);
  socket.once('timeout', onTimeout);
}
