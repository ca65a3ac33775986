import { describe, expect, it } from 'vitest';
import { bufferedBody, statusHasBody, teeBody, type ResponseSink, type TeeEnd } from '../../src/exchange/body.ts';
import type { ResponseBody } from '../../src/exchange/request.ts';
import { memorySink } from '../support/sinks.ts';

/** A body that writes its parts the way a caller chooses. */
function bodyOf(write: (sink: ResponseSink) => void): ResponseBody & { discarded: number } {
  const body = {
    discarded: 0,
    pipeTo(sink: ResponseSink) {
      write(sink);
      return Promise.resolve();
    },
    discard() {
      body.discarded += 1;
    },
  };
  return body;
}

describe('buffered bodies', () => {
  it('write their bytes and end', async () => {
    const { sink, text, writable } = memorySink();
    await bufferedBody(Buffer.from('kept')).pipeTo(sink);
    expect(text()).toBe('kept');
    expect(writable.writableEnded).toBe(true);
  });

  it('end at once when empty or absent', async () => {
    for (const bytes of [null, Buffer.alloc(0)]) {
      const { sink, text, writable } = memorySink();
      await bufferedBody(bytes).pipeTo(sink);
      expect(text()).toBe('');
      expect(writable.writableEnded).toBe(true);
    }
  });

  it('know which statuses carry no body', () => {
    expect(statusHasBody(200)).toBe(true);
    expect(statusHasBody(204)).toBe(false);
    expect(statusHasBody(304)).toBe(false);
  });
});

describe('teeing a body', () => {
  it('keeps a copy of every chunk and the final one while the client gets them all', async () => {
    const { sink, text } = memorySink();
    const kept: Buffer[] = [];
    const body = bodyOf((target) => {
      target.write(Buffer.from('a'));
      target.write(Buffer.from('bc'));
      target.end(Buffer.from('d'));
    });
    await teeBody(body, 100, (end) => kept.push(end.kind === 'whole' ? end.bytes : Buffer.from(end.kind))).pipeTo(sink);
    expect(text()).toBe('abcd');
    expect(kept.map(String)).toEqual(['abcd']);
  });

  it("passes the sink's back-pressure on to the body", async () => {
    const { sink, writable } = memorySink();
    let drained = 0;
    const body = bodyOf((target) => {
      target.on('drain', () => (drained += 1));
      target.end();
    });
    const kept: Buffer[] = [];
    await teeBody(body, 100, (end) => kept.push(end.kind === 'whole' ? end.bytes : Buffer.from(end.kind))).pipeTo(sink);
    writable.emit('drain');
    expect(drained).toBe(1);
    expect(kept.map(String)).toEqual(['']);
  });

  it('drops the copy past the limit, still streams the whole body, and says it was too large', async () => {
    const { sink, text } = memorySink();
    const ends: TeeEnd[] = [];
    const body = bodyOf((target) => {
      target.write(Buffer.from('12345'));
      target.write(Buffer.from('6'));
      target.end(Buffer.from('7'));
    });
    await teeBody(body, 5, (end) => ends.push(end)).pipeTo(sink);
    expect(text()).toBe('1234567');
    expect(ends).toEqual([{ kind: 'too-large' }]);
  });

  it('says the body was cut when it fails midway', async () => {
    const failing: ResponseBody = {
      pipeTo: (sink) => {
        sink.write(Buffer.from('partial'));
        return Promise.reject(new Error('reset'));
      },
      discard: () => undefined,
    };
    const ends: TeeEnd[] = [];
    await expect(teeBody(failing, 100, (end) => ends.push(end)).pipeTo(memorySink().sink)).rejects.toThrow('reset');
    expect(ends).toEqual([{ kind: 'cut' }]);
  });

  it('discards through to the original body, once, and says it was cut', () => {
    const body = bodyOf(() => undefined);
    const ends: TeeEnd[] = [];
    const teed = teeBody(body, 100, (end) => ends.push(end));
    teed.discard();
    expect(body.discarded).toBe(1);
    expect(ends).toEqual([{ kind: 'cut' }]);
  });
});
