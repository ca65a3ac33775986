import { connect } from 'node:net';

export interface RawExchange {
  /** Everything the server sent before closing or the wait ending. */
  readonly text: string;
  /** True when the server closed the connection. */
  readonly closed: boolean;
}

/**
 * Writes `payload` on a fresh TCP connection and collects the answer until the server closes
 * the connection, or `waitMs` passes after the last byte received.
 */
export function rawRequest(port: number, payload: string, waitMs = 2000): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), waitMs);
    };
    socket.on('connect', () => {
      socket.write(payload);
      arm();
    });
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      arm();
    });
    socket.on('end', () => finish(true));
    socket.on('error', (error) => (text === '' ? reject(error) : finish(true)));
  });
}
