// An open WebSocket: the client's connection and the upstream's, joined byte for byte after the
// upstream's 101. Bytes pass as they come, with back-pressure each way; the tunnel only counts
// them, notes when the last one passed and where frames end. It closes when either side does,
// or when Breakwater ends it (idle timeout, maximum duration, the end of a drain) with a close
// frame 1001 to both sides.

import type { Duplex } from 'node:stream';
import type { Sender } from 'ws';
import type { WebSocketConfig } from '../../config/types.ts';
import type { TunnelEnd } from '../../exchange/record.ts';
import type { Clock } from '../../runtime/clock.ts';
import { checkTunnel } from './bounds.ts';
import { FrameBoundaries } from './frames.ts';

/** Why Breakwater ends a tunnel. */
export type TunnelBound = Exclude<TunnelEnd, 'client' | 'upstream'>;

/** RFC 6455 7.4.1: "going away", as a server going down; the client may reconnect at once. */
const goingAway = 1001;

/** The close frame's reason text for each of Breakwater's reasons (what a client's onclose reads). */
const closeReasons: Readonly<Record<TunnelBound, string>> = {
  drain: 'proxy shutting down',
  idle_timeout: 'idle timeout',
  max_duration: 'maximum duration reached',
};

/**
 * After Breakwater's close frames, how long the two sides get to finish the frame under way and
 * answer with their own close frames before their connections are cut.
 */
export const closeGraceMs = 2000;

export interface TunnelSummary {
  readonly bytesToUpstream: number;
  readonly bytesToClient: number;
  readonly closedBy: TunnelEnd;
}

export interface TunnelOptions {
  readonly clock: Clock;
  readonly bounds: WebSocketConfig;
  /** ws's frame writer, which writes Breakwater's close frames. */
  readonly sender: typeof Sender;
  /** Called once, when both connections have closed. */
  readonly onClosed: (summary: TunnelSummary) => void;
}

/** One direction of the tunnel. */
class Way {
  readonly from: Duplex;
  readonly to: Duplex;
  /** Who `from` is: the end named when it closes first. */
  readonly fromSide: 'client' | 'upstream';
  /** Frames toward the upstream are masked, as every client's must be (RFC 6455 5.3). */
  readonly masked: boolean;
  readonly frames = new FrameBoundaries();
  /** Bytes written to `to`. */
  bytes = 0;
  waitingForDrain = false;
  /** Breakwater's close frame has been written to `to` (or `from` had sent one through already). */
  closed = false;

  constructor(from: Duplex, to: Duplex, fromSide: 'client' | 'upstream') {
    this.from = from;
    this.to = to;
    this.fromSide = fromSide;
    this.masked = fromSide === 'client';
  }
}

export class Tunnel {
  readonly #client: Duplex;
  readonly #upstream: Duplex;
  readonly #options: TunnelOptions;
  readonly #toUpstream: Way;
  readonly #toClient: Way;
  readonly #openedAt: number;
  #lastActivityAt: number;
  #cancelBoundTimer: (() => void) | undefined;
  #cancelGrace: (() => void) | undefined;
  /** Who closed first: the first close frame's sender, else the first connection to end, or Breakwater. */
  #closedBy: TunnelEnd | undefined;
  /** Set once Breakwater has begun to close the tunnel. */
  #closing: TunnelBound | undefined;
  #socketsOpen = 2;

  constructor(client: Duplex, upstream: Duplex, options: TunnelOptions) {
    this.#client = client;
    this.#upstream = upstream;
    this.#options = options;
    this.#toUpstream = new Way(client, upstream, 'client');
    this.#toClient = new Way(upstream, client, 'upstream');
    this.#openedAt = options.clock.now();
    this.#lastActivityAt = this.#openedAt;
  }

  /** Starts carrying bytes both ways and timing the bounds. */
  start(): void {
    for (const way of [this.#toUpstream, this.#toClient]) {
      way.from.on('data', (chunk: Buffer) => this.#carry(way, chunk));
      way.from.on('end', () => this.#ended(way));
      way.from.on('error', () => this.#reset(way.fromSide));
      way.from.on('close', () => this.#socketClosed(way));
    }
    // A side gone between the 101 and now has had its 'close' already.
    for (const way of [this.#toUpstream, this.#toClient]) {
      if (way.from.closed) this.#socketClosed(way);
    }
    this.#checkBounds();
  }

  /**
   * Ends the tunnel with a close frame 1001 to both sides, each after the frame it is receiving
   * (if any) has passed whole. A side's connection is ended once it has had a close frame and
   * sent its own (the closing handshake of RFC 6455 7.1); both are cut if that takes longer
   * than closeGraceMs.
   */
  close(bound: TunnelBound): void {
    if (this.#closing !== undefined || this.#socketsOpen === 0) return;
    this.#closing = bound;
    this.#closedBy ??= bound;
    this.#cancelBoundTimer?.();
    for (const way of [this.#toUpstream, this.#toClient]) {
      if (way.frames.atBoundary) this.#sendClose(way);
      // Reading on, so that the answers to the close frames are taken in.
      way.from.resume();
    }
    this.#endClosedSides();
    this.#cancelGrace = this.#options.clock.setTimer(closeGraceMs, () => {
      this.#client.destroy();
      this.#upstream.destroy();
    });
  }

  #carry(way: Way, chunk: Buffer): void {
    this.#lastActivityAt = this.#options.clock.now();
    if (this.#closing === undefined) {
      way.frames.read(chunk);
      // The side whose close frame comes first is the one that closed the WebSocket.
      if (this.#closedBy === undefined && way.frames.closeSeen) this.#closedBy = way.fromSide;
      this.#write(way, chunk);
      return;
    }
    // Closing: only the rest of the frame under way passes, then Breakwater's close frame.
    // What comes after is read, to see the side's answering close frame, and dropped.
    let rest = chunk;
    if (!way.closed) {
      const passing = way.frames.read(chunk, true);
      if (passing > 0) this.#write(way, passing === chunk.length ? chunk : chunk.subarray(0, passing));
      if (!way.frames.atBoundary) return;
      this.#sendClose(way);
      rest = chunk.subarray(passing);
    }
    way.frames.read(rest);
    this.#endClosedSides();
  }

  #write(way: Way, chunk: Buffer): void {
    way.bytes += chunk.length;
    if (way.to.write(chunk) || way.waitingForDrain) return;
    // The receiving side is slower: stop reading until it has taken what it has.
    way.waitingForDrain = true;
    way.from.pause();
    way.to.once('drain', () => {
      way.waitingForDrain = false;
      way.from.resume();
    });
  }

  /** Writes Breakwater's close frame to `way.to`, unless `way.from` has passed it one already. */
  #sendClose(way: Way): void {
    if (way.closed) return;
    way.closed = true;
    const to = way.to;
    if (to.destroyed || to.writableEnded || way.frames.closeSeen) return;
    new this.#options.sender(to).close(goingAway, closeReasons[this.#closing!], way.masked);
  }

  /** While closing: ends the connection of each side that has had a close frame and sent one. */
  #endClosedSides(): void {
    for (const [toSide, fromSide] of [
      [this.#toClient, this.#toUpstream],
      [this.#toUpstream, this.#toClient],
    ] as const) {
      const socket = toSide.to;
      const hadClose = toSide.closed || toSide.frames.closeSeen;
      if (hadClose && fromSide.frames.closeSeen && !socket.writableEnded) socket.end();
    }
  }

  /** `way.from` ended its side: the other learns it the same way, unless Breakwater is closing. */
  #ended(way: Way): void {
    this.#closedBy ??= way.fromSide;
    if (this.#closing === undefined && !way.to.writableEnded) way.to.end();
  }

  #reset(side: 'client' | 'upstream'): void {
    this.#closedBy ??= side;
    this.#client.destroy();
    this.#upstream.destroy();
  }

  #socketClosed(way: Way): void {
    const closedBy = (this.#closedBy ??= way.fromSide);
    this.#socketsOpen -= 1;
    const other = way.to;
    if (this.#socketsOpen > 0) {
      // Nothing more can reach a side whose connection is gone. While closing, the other side
      // still gets what was written to it (its close frame): it is ended, and cut at the end of
      // the grace. An ended side closes when its peer does, or at the end of a grace too.
      if (this.#closing === undefined && !other.writableEnded) other.destroy();
      else {
        if (!other.writableEnded) other.end();
        this.#cancelGrace ??= this.#options.clock.setTimer(closeGraceMs, () => other.destroy());
      }
      return;
    }
    this.#cancelBoundTimer?.();
    this.#cancelGrace?.();
    this.#options.onClosed({ bytesToUpstream: this.#toUpstream.bytes, bytesToClient: this.#toClient.bytes, closedBy });
  }

  /** Closes the tunnel when a bound has run out; otherwise looks again when the next one could. */
  #checkBounds(): void {
    this.#cancelBoundTimer = undefined;
    if (this.#closing !== undefined || this.#socketsOpen === 0) return;
    const now = this.#options.clock.now();
    const check = checkTunnel(this.#options.bounds, this.#openedAt, this.#lastActivityAt, now);
    if (check.kind === 'expired') {
      this.close(check.bound);
      return;
    }
    if (check.checkAt !== undefined) this.#cancelBoundTimer = this.#options.clock.setTimer(check.checkAt - now, () => this.#checkBounds());
  }
}
