import { describe, expect, it } from 'vitest';
import { LineBatch, type LineSink } from '../../../src/telemetry/logger.ts';

/** A sink that records each write, and whether it was flushed. */
function recordingSink(): LineSink & { writes: string[]; flushes: number; syncFlushes: number } {
  const sink = {
    writes: [] as string[],
    flushes: 0,
    syncFlushes: 0,
    write(text: string) {
      sink.writes.push(text);
    },
    flush(callback: (error?: Error | null) => void) {
      sink.flushes += 1;
      callback(null);
    },
    flushSync() {
      sink.syncFlushes += 1;
    },
  };
  return sink;
}

describe('LineBatch', () => {
  it('holds lines until they reach the batch size, then writes them as one string, in order', () => {
    const sink = recordingSink();
    const batch = new LineBatch(sink, 10);
    batch.write('aaaa\n');
    batch.write('bbbb\n'.slice(0, 4));
    expect(sink.writes).toEqual([]);
    batch.write('c\n');
    expect(sink.writes).toEqual(['aaaa\nbbbbc\n']);
    batch.write('d\n');
    expect(sink.writes).toEqual(['aaaa\nbbbbc\n']);
  });

  it('writes a line longer than the batch at once', () => {
    const sink = recordingSink();
    new LineBatch(sink, 4).write('longer than four\n');
    expect(sink.writes).toEqual(['longer than four\n']);
  });

  it('flush writes what it holds, flushes the sink and calls back', () => {
    const sink = recordingSink();
    const batch = new LineBatch(sink, 1024);
    batch.write('one\n');
    batch.write('two\n');
    let calledBack = false;
    batch.flush(() => (calledBack = true));
    expect(sink.writes).toEqual(['one\ntwo\n']);
    expect(sink.flushes).toBe(1);
    expect(calledBack).toBe(true);
  });

  it('flush with nothing held writes nothing but still flushes the sink', () => {
    const sink = recordingSink();
    new LineBatch(sink, 1024).flush();
    expect(sink.writes).toEqual([]);
    expect(sink.flushes).toBe(1);
  });

  it('flushSync writes what it holds and flushes the sink synchronously', () => {
    const sink = recordingSink();
    const batch = new LineBatch(sink, 1024);
    batch.write('last\n');
    batch.flushSync();
    expect(sink.writes).toEqual(['last\n']);
    expect(sink.syncFlushes).toBe(1);
  });
});
