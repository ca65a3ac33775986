// A request body copied aside while it streams: the stream reads as its source would, the copy
// stops at its limit, a body nobody read is read to its end for the copy, and giving up on the
// stream gives up on its source.

import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BodyCapture } from '../../src/exchange/request-body.ts';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function source(...chunks: string[]): PassThrough {
  const body = new PassThrough();
  for (const chunk of chunks) body.write(chunk);
  body.end();
  return body;
}

describe('a captured request body', () => {
  it('streams as its source and keeps a copy of a body within the limit', async () => {
    const capture = new BodyCapture(source('hello ', 'world'), 100);

    expect((await readAll(capture.stream)).toString()).toBe('hello world');
    expect(await capture.settle()).toEqual({ kind: 'whole', bytes: Buffer.from('hello world') });
  });

  it('streams a body past the limit whole, and keeps no copy of it', async () => {
    const capture = new BodyCapture(source('12345', '67890'), 8);

    expect((await readAll(capture.stream)).toString()).toBe('1234567890');
    expect(await capture.settle()).toEqual({ kind: 'too-large', size: 10 });
  });

  it('reads a body nobody read to its end for the copy', async () => {
    const body = source('unread');
    const capture = new BodyCapture(body, 100);

    expect(await capture.settle()).toEqual({ kind: 'whole', bytes: Buffer.from('unread') });
    expect(body.readableEnded).toBe(true);
  });

  it('answers at once for a body declared larger than the limit, and drains it', async () => {
    const body = new PassThrough();
    const capture = new BodyCapture(body, 4, 1000);

    expect(await capture.settle()).toEqual({ kind: 'too-large', size: 1000 });
    // The body still flows to its end, into nothing.
    body.end(Buffer.alloc(1000));
    await once(body, 'end');
  });

  it('answers as soon as an unread body passes the limit, and drains the rest', async () => {
    const body = new PassThrough();
    const capture = new BodyCapture(body, 4);
    const settled = capture.settle();

    body.write('123');
    body.write('456');

    // Its size is not known yet, and is not waited for.
    expect(await settled).toEqual({ kind: 'too-large', size: null });
    body.end('789');
    await once(body, 'end');
  });

  it('lets the rest of a body flow once its reader stopped reading', async () => {
    const body = new PassThrough();
    const capture = new BodyCapture(body, 100);
    body.write('first ');
    const reader = capture.stream;
    // A reader that takes one chunk and walks away without ending the stream.
    const [first] = (await once(reader, 'data')) as [Buffer];
    reader.pause();
    body.end('second');

    expect(first.toString()).toBe('first ');
    expect(await capture.settle()).toEqual({ kind: 'whole', bytes: Buffer.from('first second') });
  });

  it('gives up on its source when its reader gives up on it, and calls the copy cut', async () => {
    const body = new PassThrough();
    body.write('part');
    const capture = new BodyCapture(body, 100);
    // The reader hears its own failure, as undici does.
    capture.stream.on('error', () => undefined).resume();
    await once(capture.stream, 'data');

    capture.stream.destroy(new Error('the upstream went away'));

    expect(body.destroyed).toBe(true);
    expect(await capture.settle()).toEqual({ kind: 'cut', size: 4 });
  });

  it('fails its stream when the source fails, and calls the copy cut', async () => {
    const body = new PassThrough();
    const capture = new BodyCapture(body, 100);
    const reading = readAll(capture.stream);
    body.write('part');
    body.destroy(new Error('client reset'));

    await expect(reading).rejects.toThrow('client reset');
    expect(await capture.settle()).toEqual({ kind: 'cut', size: 4 });
  });

  it('calls the copy of a source already gone cut', async () => {
    const body = new PassThrough();
    body.destroy();
    await once(body, 'close');

    expect(await new BodyCapture(body, 100).settle()).toEqual({ kind: 'cut', size: 0 });
  });

  it('drops the copy when released, and streams on untouched', async () => {
    const capture = new BodyCapture(source('kept ', 'streaming'), 100);
    capture.release();

    expect((await readAll(capture.stream)).toString()).toBe('kept streaming');
  });
});
