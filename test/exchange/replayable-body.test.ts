import { PassThrough, type Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Scope } from '../../src/exchange/cancel.ts';
import { readAhead, ReplayableBody } from '../../src/exchange/request-body.ts';

/** Everything a reader yields until it ends. */
async function readAll(reader: Readable): Promise<string> {
  let text = '';
  for await (const chunk of reader) text += String(chunk);
  return text;
}

/** What a reader yields next. */
function nextChunk(reader: Readable): Promise<string> {
  return new Promise((resolve) => reader.once('data', (chunk: Buffer) => resolve(chunk.toString())));
}

describe('a body sent again while it still streams', () => {
  it('streams to its first reader at once, before the body ends', async () => {
    const source = new PassThrough();
    const body = new ReplayableBody(source, 1024);
    const first = body.open();
    source.write('ping');
    expect(await nextChunk(first)).toBe('ping');
    source.end('!');
  });

  it('gives a later reader what has passed, then the rest as it comes', async () => {
    const source = new PassThrough();
    const body = new ReplayableBody(source, 1024);
    const first = body.open();
    source.write('one,');
    await nextChunk(first);
    first.destroy();
    const second = body.open();
    source.end('two');
    expect(await readAll(second)).toBe('one,two');
  });

  it('gives readers open together every byte', async () => {
    const source = new PassThrough();
    const body = new ReplayableBody(source, 1024);
    const first = body.open();
    const second = body.open();
    source.write('a');
    source.end('b');
    expect(await Promise.all([readAll(first), readAll(second)])).toEqual(['ab', 'ab']);
  });

  it('opens no new reader once more than the limit has passed, and still streams to the one it has', async () => {
    const source = new PassThrough();
    const body = new ReplayableBody(source, 4);
    const first = body.open();
    const read = readAll(first);
    source.end('123456');
    expect(await read).toBe('123456');
    expect(body.replayable).toBe(false);
    expect(() => body.open()).toThrow(/no longer replayable/);
  });

  it('reads nothing from the client while no reader is open', async () => {
    const source = new PassThrough();
    const body = new ReplayableBody(source, 1024);
    const first = body.open();
    source.write('x');
    await nextChunk(first);
    first.destroy();
    await new Promise((resolve) => first.once('close', resolve));
    source.write('more');
    // Nobody takes it: the source keeps it.
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.readableFlowing).toBe(false);
    expect(body.replayable).toBe(true);
    const second = body.open();
    source.end();
    expect(await readAll(second)).toBe('xmore');
  });

  it('fails its readers when the body fails', async () => {
    const source = new PassThrough();
    const body = new ReplayableBody(source, 1024);
    const reader = body.open();
    const read = readAll(reader);
    source.destroy(new Error('client gone'));
    await expect(read).rejects.toThrow('client gone');
    expect(body.replayable).toBe(false);
  });
});

describe('reading ahead a body to see whether it is all there', () => {
  const settle = (source: Readable, limit = 1024): Promise<Readable | Buffer> =>
    new Promise((resolve) => readAhead(source, limit, Scope.root(Infinity), resolve));

  it('hands on a body that ended by the next turn as its bytes', async () => {
    const source = new PassThrough();
    source.write('one message');
    source.end();
    const body = await settle(source);
    expect(Buffer.isBuffer(body) && body.toString()).toBe('one message');
  });

  it('hands on a body still coming as a stream of what came and what follows, without holding it back', async () => {
    const source = new PassThrough();
    source.write('first ');
    const body = await settle(source);
    expect(Buffer.isBuffer(body)).toBe(false);
    source.end('then the rest');
    expect(await readAll(body as Readable)).toBe('first then the rest');
  });

  it('hands on a body larger than the limit as a stream at once', async () => {
    const source = new PassThrough();
    source.end('0123456789');
    const body = await settle(source, 4);
    expect(Buffer.isBuffer(body)).toBe(false);
    expect(await readAll(body as Readable)).toBe('0123456789');
  });

  it('hands on a body that failed as a stream that fails the same way', async () => {
    const source = new PassThrough();
    source.write('part');
    source.destroy(new Error('client gone'));
    const body = await settle(source);
    await expect(readAll(body as Readable)).rejects.toThrow('client gone');
  });
});
