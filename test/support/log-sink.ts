import { Writable } from 'node:stream';
import { createAccessLogger, createLogger, type Logger } from '../../src/telemetry/logger.ts';

export interface LogSink {
  readonly logger: Logger;
  /** The access logger, as `breakwater run` makes it, writing into the same lines. */
  readonly accessLogger: Logger;
  /** Every line logged so far, parsed. */
  readonly lines: Record<string, unknown>[];
  /** The raw text logged so far. */
  text(): string;
  /** The access-log lines (one per request). */
  accessLines(): Record<string, unknown>[];
}

/** Breakwater's logger, writing its JSON lines into memory instead of stdout. */
export function logSink(): LogSink {
  const lines: Record<string, unknown>[] = [];
  let raw = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString();
      raw += text;
      for (const line of text.split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return {
    logger: createLogger({ destination: stream }),
    accessLogger: createAccessLogger({ destination: stream }),
    lines,
    text: () => raw,
    accessLines: () => lines.filter((line) => line.msg === 'request'),
  };
}
