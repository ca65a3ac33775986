// A request body copied aside while it streams: whoever reads the body reads it as before, the
// copy stops at its limit, a body nobody read is read to its end for the copy, and giving up on
// the body is the reader's business, as without the copy.

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
  it('reads as before, and keeps a copy of a body within the limit', async () => {
    const body = source('hello ', 'world');
    const capture = new BodyCapture(body, 100);

    expect((await readAll(body)).toString()).toBe('hello world');
    expect(await capture.settle()).toEqual({ kind: 'whole', bytes: Buffer.from('hello world') });
  });

  it('copies a body read through a pipe too', async () => {
    const body = source('piped ', 'body');
    const capture = new BodyCapture(body, 100);
    const out = new PassThrough();
    body.pipe(out);

    expect((await readAll(out)).toString()).toBe('piped body');
    expect(await capture.settle()).toEqual({ kind: 'whole', bytes: Buffer.from('piped body') });
  });

  it('reads a body past the limit whole, and keeps no copy of it', async () => {
    const body = source('12345', '67890');
    const capture = new BodyCapture(body, 8);

    expect((await readAll(body)).toString()).toBe('1234567890');
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
    // A reader that takes one chunk and walks away without ending the body.
    const [first] = (await once(body, 'data')) as [Buffer];
    body.pause();
    body.end('second');

    expect(first.toString()).toBe('first ');
    expect(await capture.settle()).toEqual({ kind: 'whole', bytes: Buffer.from('first second') });
  });

  it('calls the copy cut when the body was destroyed before its end', async () => {
    const body = new PassThrough();
    body.on('error', () => undefined);
    const capture = new BodyCapture(body, 100);
    body.write('part');
    body.resume();
    await once(body, 'data');

    // The reader (an upstream attempt that failed) gives up on it.
    body.destroy(new Error('the upstream went away'));

    expect(await capture.settle()).toEqual({ kind: 'cut', size: 4 });
  });

  it('calls the copy cut when the body fails while it is awaited', async () => {
    const body = new PassThrough();
    const capture = new BodyCapture(body, 100);
    const settled = capture.settle();
    body.write('part');
    await once(body, 'data');
    body.destroy(new Error('client reset'));

    expect(await settled).toEqual({ kind: 'cut', size: 4 });
  });

  it('drops the copy when released, and leaves the body as it was', async () => {
    const body = source('kept ', 'streaming');
    const capture = new BodyCapture(body, 100);
    capture.release();

    expect(body.emit).toBe(PassThrough.prototype.emit);
    expect((await readAll(body)).toString()).toBe('kept streaming');
  });
});

describe('a captured body that never ends', () => {
  it('is called cut when its copy is abandoned', async () => {
    const body = new PassThrough();
    const capture = new BodyCapture(body, 100);
    const settled = capture.settle();
    body.write('half');
    await once(body, 'data');

    capture.abandon();

    expect(await settled).toEqual({ kind: 'cut', size: 4 });
    expect(body.emit).toBe(PassThrough.prototype.emit);
    body.destroy();
  });
});
