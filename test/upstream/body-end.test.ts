// What a layer holding something for a whole exchange (a bulkhead slot, an attempt's scope)
// is told of an upstream response's body, through the real forwarding handler and a real
// upstream on loopback: the end comes once the body has streamed or been discarded, never at
// the head, and exactly once.

import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../../src/config/types.ts';
import { Scope } from '../../src/exchange/cancel.ts';
import { onBodyEnd } from '../../src/exchange/request.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { seededRandom } from '../../src/runtime/random.ts';
import { forwardTo } from '../../src/upstream/forward.ts';
import { Upstream } from '../../src/upstream/upstream.ts';
import { proxyRequest, scopeOf } from '../support/handlers.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';
import { waitFor } from '../support/wait.ts';

let server: UpstreamServer | undefined;
let target: Upstream | undefined;

afterEach(async () => {
  await target?.destroy();
  await server?.close();
  server = undefined;
  target = undefined;
});

async function setUp() {
  const held: ServerResponse[] = [];
  server = await startUpstream((_req, res) => {
    // The head and part of the body now; the rest when the test says.
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('par');
    held.push(res);
  });
  const config: UpstreamConfig = {
    name: 'catalog',
    endpoints: [server.origin],
    loadBalancing: 'round-robin',
    connectTimeoutMs: 1_000,
    idleTimeoutMs: 60_000,
  };
  target = new Upstream(config, { random: seededRandom(1) });
  const handler = forwardTo(target, { clock: systemClock, observe: () => undefined, deadlineHeader: 'x-request-timeout-ms' });
  const request = proxyRequest({ upstream: 'catalog', headers: ['host', 'catalog'], deadlineAt: systemClock.now() + 30_000 });
  return { held, handler, request, scope: new Scope(scopeOf(request)) };
}

describe("the end of an upstream response's body", () => {
  it('is told once the body has streamed to the client, not at its head, and once only', async () => {
    const { held, handler, request, scope } = await setUp();
    const response = await handler(request, scope);
    const ends: string[] = [];
    const told = onBodyEnd(onBodyEnd(response, () => ends.push('inner')), () => ends.push('outer'));
    await waitFor('the upstream to hold the rest of the body', () => held.length === 1);

    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (chunk: Buffer) => chunks.push(chunk));
    const piping = told.body.pipeTo(sink);
    expect(ends).toEqual([]);
    held[0]!.end('tial');
    await piping;
    expect(Buffer.concat(chunks).toString()).toBe('partial');
    // Inner first, as each layer's hold was taken.
    expect(ends).toEqual(['inner', 'outer']);
    told.body.discard();
    expect(ends).toEqual(['inner', 'outer']);
  });

  it('is told at once when the body is discarded, and at once to whoever asks after that', async () => {
    const { handler, request, scope } = await setUp();
    const response = await handler(request, scope);
    let ends = 0;
    const told = onBodyEnd(response, () => (ends += 1));
    told.body.discard();
    expect(ends).toBe(1);
    let late = 0;
    onBodyEnd(told, () => (late += 1));
    expect(late).toBe(1);
    expect(ends).toBe(1);
  });
});
