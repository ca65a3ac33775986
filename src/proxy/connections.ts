// The open connections of one listener, counted in total and per client address, and the
// admission rule for a new one. No sockets here: the listener asks before it reads a byte.

import type { ConnectionLimits } from '../config/types.ts';
import type { ConnectionRejection } from '../exchange/record.ts';

/**
 * One client per IP address. An IPv4 peer on a dual-stack socket shows as `::ffff:10.0.0.7`;
 * it is the same client as `10.0.0.7`.
 */
export function clientKey(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return '';
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
}

export class ConnectionTable {
  #open = 0;
  readonly #byClient = new Map<string, number>();

  /** Connections admitted and not yet released. */
  get open(): number {
    return this.#open;
  }

  /** Open connections from `client`. */
  openFrom(client: string): number {
    return this.#byClient.get(client) ?? 0;
  }

  /** Admits a connection from `client` and counts it, or says which limit refuses it. */
  admit(client: string, limits: Pick<ConnectionLimits, 'maxConnections' | 'maxConnectionsPerClient'>): ConnectionRejection | undefined {
    if (this.#open >= limits.maxConnections) return 'max_connections';
    const fromClient = this.#byClient.get(client) ?? 0;
    if (fromClient >= limits.maxConnectionsPerClient) return 'per_client';
    this.#open += 1;
    this.#byClient.set(client, fromClient + 1);
    return undefined;
  }

  /** Forgets an admitted connection once it has closed. */
  release(client: string): void {
    const fromClient = this.#byClient.get(client) ?? 0;
    if (fromClient <= 0) return;
    this.#open -= 1;
    // A client with no connection left takes no room: the map holds open clients only.
    if (fromClient === 1) this.#byClient.delete(client);
    else this.#byClient.set(client, fromClient - 1);
  }
}
