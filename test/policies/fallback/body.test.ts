import { describe, expect, it } from 'vitest';
import { bufferedBody, statusHasBody, teeBody, type ResponseSink } from '../../../src/policies/fallback/body.ts';
import type { ResponseBody } from '../../../src/exchange/request.ts';
import { memorySink } from '../../support/sinks.ts';

/** A body that writes its parts the way a caller chooses, to exercise every write form. */
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
  it('keeps a copy of strings, buffers and the final chunk while the client gets them all', async () => {
    const { sink, text } = memorySink();
    const kept: Buffer[] = [];
    const body = bodyOf((target) => {
      target.write('a');
      target.write('Yg==', 'base64');
      target.write(new Uint8Array([99]));
      target.end('d');
    });
    await teeBody(body, 100, (bytes) => kept.push(bytes)).pipeTo(sink);
    expect(text()).toBe('abcd');
    expect(kept.map(String)).toEqual(['abcd']);
  });

  it('lets the body use the rest of the sink as it is', async () => {
    const { sink, writable } = memorySink();
    let drained = 0;
    const body = bodyOf((target) => {
      target.on('drain', () => (drained += 1));
      expect(target.writableEnded).toBe(false);
      target.end(() => undefined);
    });
    const kept: Buffer[] = [];
    await teeBody(body, 100, (bytes) => kept.push(bytes)).pipeTo(sink);
    writable.emit('drain');
    expect(drained).toBe(1);
    expect(kept.map(String)).toEqual(['']);
  });

  it('drops the copy past the limit and still streams the whole body', async () => {
    const { sink, text } = memorySink();
    let completed = false;
    const body = bodyOf((target) => {
      target.write('12345');
      target.write('6');
      target.end('7');
    });
    await teeBody(body, 5, () => (completed = true)).pipeTo(sink);
    expect(text()).toBe('1234567');
    expect(completed).toBe(false);
  });

  it('completes nothing when the body fails midway', async () => {
    const failing: ResponseBody = {
      pipeTo: (sink) => {
        sink.write('partial');
        return Promise.reject(new Error('reset'));
      },
      discard: () => undefined,
    };
    let completed = false;
    await expect(teeBody(failing, 100, () => (completed = true)).pipeTo(memorySink().sink)).rejects.toThrow('reset');
    expect(completed).toBe(false);
  });

  it('discards through to the original body', () => {
    const body = bodyOf(() => undefined);
    teeBody(body, 100, () => undefined).discard();
    expect(body.discarded).toBe(1);
  });
});
