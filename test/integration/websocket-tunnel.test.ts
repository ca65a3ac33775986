// The tunnel's close at a frame boundary, on real sockets: a frame under way when Breakwater
// closes passes whole before the close frame, and what the side sends after it is dropped.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { Sender } from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeGraceMs, Tunnel, type TunnelSummary } from '../../src/proxy/websocket/tunnel.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { waitFor } from '../support/wait.ts';

/** A connected pair of sockets on loopback: `outer` is the peer's end, `inner` the tunnel's. */
interface Pair {
  readonly outer: Socket;
  readonly inner: Socket;
  /** Everything `outer` has received. */
  received(): Buffer;
  readonly closed: Promise<void>;
}

async function socketPair(server: Server): Promise<Pair> {
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const outer = connect((server.address() as { port: number }).port, '127.0.0.1');
  const inner = await accepted;
  const chunks: Buffer[] = [];
  outer.on('data', (chunk: Buffer) => chunks.push(chunk));
  outer.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => outer.once('close', () => resolve()));
  await new Promise((resolve) => outer.once('connect', resolve));
  return { outer, inner, received: () => Buffer.concat(chunks), closed };
}

function frame(payload: Buffer, masked: boolean, opcode = 0x2): Buffer {
  return Buffer.concat(Sender.frame(payload, { fin: true, opcode, mask: masked, readOnly: false, rsv1: false }));
}

/** The close code and reason of a close frame that starts `bytes` (masked or not). */
function closeFrame(bytes: Buffer): { code: number; reason: string; masked: boolean } {
  expect(bytes[0]).toBe(0x88);
  const masked = (bytes[1]! & 0x80) !== 0;
  const length = bytes[1]! & 0x7f;
  const payload = Buffer.from(bytes.subarray(masked ? 6 : 2, (masked ? 6 : 2) + length));
  if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= bytes[2 + (i % 4)]!;
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString(), masked };
}

describe('closing a tunnel at a frame boundary', () => {
  let server: Server;
  let client: Pair;
  let upstream: Pair;
  let clock: FakeClock;
  let summary: TunnelSummary | undefined;
  let tunnel: Tunnel;

  beforeEach(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = await socketPair(server);
    upstream = await socketPair(server);
    clock = new FakeClock();
    summary = undefined;
    tunnel = new Tunnel(client.inner, upstream.inner, {
      clock,
      bounds: { idleTimeoutMs: 0, maxDurationMs: 0 },
      sender: Sender,
      onClosed: (result) => (summary = result),
    });
    tunnel.start();
  });

  afterEach(async () => {
    client.outer.destroy();
    upstream.outer.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('lets the frame under way pass whole, then sends the close frame, and drops what follows', async () => {
    const message = frame(Buffer.alloc(64 * 1024, 0x61), true);
    const after = frame(Buffer.from('after the close'), true);
    // Half of a client frame has reached the upstream when the drain ends.
    client.outer.write(message.subarray(0, 1000));
    await waitFor('the first half at the upstream', () => upstream.received().length === 1000);
    tunnel.close('drain');

    // The client's way was between frames: its close frame goes at once, unmasked (from a server).
    await waitFor('the close frame at the client', () => client.received().length > 0);
    expect(closeFrame(client.received())).toEqual({ code: 1001, reason: 'proxy shutting down', masked: false });
    // The upstream gets nothing before the frame under way is whole.
    expect(upstream.received().length).toBe(1000);

    client.outer.write(Buffer.concat([message.subarray(1000), after]));
    await waitFor('the close frame at the upstream', () => upstream.received().length > message.length);
    const received = upstream.received();
    expect(received.subarray(0, message.length).equals(message)).toBe(true);
    // Masked, as every frame toward a server must be; the frame sent after the close never arrives.
    expect(closeFrame(received.subarray(message.length))).toEqual({ code: 1001, reason: 'proxy shutting down', masked: true });
    expect(received.includes(Buffer.from('after the close'))).toBe(false);

    // Both sides end their connections: the tunnel is over.
    client.outer.end();
    upstream.outer.end();
    await Promise.all([client.closed, upstream.closed]);
    await waitFor('the summary', () => summary !== undefined);
    expect(summary).toEqual({ bytesToUpstream: message.length, bytesToClient: 0, closedBy: 'drain' });
  });

  it('cuts both connections when the frame under way does not end within the grace', async () => {
    const message = frame(Buffer.alloc(4096), false);
    upstream.outer.write(message.subarray(0, 10));
    await waitFor('the first bytes at the client', () => client.received().length === 10);
    tunnel.close('drain');
    // The upstream's way was between frames, the client's was not: only the upstream gets a close frame.
    await waitFor('the close frame at the upstream', () => upstream.received().length > 0);
    expect(closeFrame(upstream.received()).code).toBe(1001);
    expect(client.received().length).toBe(10);

    clock.advance(closeGraceMs);
    await Promise.all([client.closed, upstream.closed]);
    await waitFor('the summary', () => summary !== undefined);
    expect(summary).toMatchObject({ closedBy: 'drain', bytesToClient: 10 });
  });

  it('sends no close frame to a side whose peer has sent one already', async () => {
    const clientClose = Buffer.concat(Sender.frame(Buffer.from([0x0f, 0xa1]), { fin: true, opcode: 0x8, mask: true, readOnly: false, rsv1: false }));
    client.outer.write(clientClose);
    await waitFor('the client close at the upstream', () => upstream.received().length === clientClose.length);
    tunnel.close('drain');
    await waitFor('the close frame at the client', () => client.received().length > 0);
    expect(closeFrame(client.received()).code).toBe(1001);
    // The upstream has the client's close frame and nothing more.
    upstream.outer.end();
    client.outer.end();
    await Promise.all([client.closed, upstream.closed]);
    expect(upstream.received().equals(clientClose)).toBe(true);
    await waitFor('the summary', () => summary !== undefined);
    // The client closed the WebSocket first.
    expect(summary!.closedBy).toBe('client');
  });
});
