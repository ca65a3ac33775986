import fc from 'fast-check';
import { Sender } from 'ws';
import { describe, expect, it } from 'vitest';
import { FrameBoundaries } from '../../../src/proxy/websocket/frames.ts';

const text = 0x1;
const binary = 0x2;
const close = 0x8;
const ping = 0x9;

/** One frame as ws writes it: masked as a client's, unmasked as a server's. */
function frame(payloadBytes: number, options: { opcode?: number; masked?: boolean; fin?: boolean } = {}): Buffer {
  const payload = Buffer.alloc(payloadBytes, 0x61);
  return Buffer.concat(Sender.frame(payload, { fin: options.fin ?? true, opcode: options.opcode ?? binary, mask: options.masked ?? false, readOnly: false, rsv1: false }));
}

/** Feeds `bytes` in pieces of the given sizes; returns the offsets (into `bytes`) at which a piece ended on a boundary. */
function boundariesSeen(frames: FrameBoundaries, bytes: Buffer, pieces: readonly number[]): number[] {
  const seen: number[] = [];
  let offset = 0;
  let piece = 0;
  let read = 0;
  while (offset < bytes.length) {
    const size = Math.max(1, pieces[piece++ % pieces.length]!);
    const chunk = bytes.subarray(offset, offset + size);
    read += frames.read(chunk);
    offset += chunk.length;
    if (frames.atBoundary) seen.push(offset);
  }
  // Without a stop, every byte is read.
  expect(read).toBe(bytes.length);
  return seen;
}

describe('WebSocket frame boundaries', () => {
  it('starts at a boundary, and is between frames exactly where each frame ends', () => {
    const sizes = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000];
    for (const masked of [false, true]) {
      const frames = sizes.map((size) => frame(size, { masked }));
      const ends = frames.map((_, index) => frames.slice(0, index + 1).reduce((sum, one) => sum + one.length, 0));
      const tracker = new FrameBoundaries();
      expect(tracker.atBoundary).toBe(true);
      // One byte at a time: every frame end, and nothing else, is a boundary.
      expect(boundariesSeen(tracker, Buffer.concat(frames), [1])).toEqual(ends);
    }
  });

  it('finds the same boundaries however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ size: fc.integer({ min: 0, max: 70_000 }), masked: fc.boolean(), opcode: fc.constantFrom(text, binary, ping) }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 80_000 }), { minLength: 1, maxLength: 8 }),
        (specs, pieces) => {
          const frames = specs.map((spec) => frame(spec.opcode === ping ? Math.min(spec.size, 125) : spec.size, spec));
          const ends = new Set(frames.map((_, index) => frames.slice(0, index + 1).reduce((sum, one) => sum + one.length, 0)));
          const seen = boundariesSeen(new FrameBoundaries(), Buffer.concat(frames), pieces);
          // Every piece that ended on a boundary ended at a frame's end, and the last piece ends the last frame.
          for (const offset of seen) expect(ends.has(offset)).toBe(true);
          expect(seen.at(-1)).toBe(Buffer.concat(frames).length);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reads only up to the end of the frame under way when asked to stop there', () => {
    const first = frame(300, { masked: true });
    const second = frame(10, { masked: true });
    const bytes = Buffer.concat([first, second]);
    const tracker = new FrameBoundaries();
    // Part of the first frame, read whole.
    expect(tracker.read(bytes.subarray(0, 100))).toBe(100);
    expect(tracker.atBoundary).toBe(false);
    // The rest arrives with the next frame behind it: only the first frame's rest is taken.
    expect(tracker.read(bytes.subarray(100), true)).toBe(first.length - 100);
    expect(tracker.atBoundary).toBe(true);
    // At a boundary nothing more is taken.
    expect(tracker.read(bytes.subarray(first.length), true)).toBe(0);
  });

  it('stops inside a chunk at the end of a frame that has no payload', () => {
    const empty = frame(0);
    const bytes = Buffer.concat([empty, frame(5)]);
    const tracker = new FrameBoundaries();
    expect(tracker.read(bytes.subarray(0, 1))).toBe(1);
    expect(tracker.read(bytes.subarray(1), true)).toBe(empty.length - 1);
  });

  it('tells when a close frame has passed, once its header has', () => {
    const closeFrame = Buffer.concat(Sender.frame(Buffer.from([0x03, 0xe8]), { fin: true, opcode: close, mask: true, readOnly: false, rsv1: false }));
    const tracker = new FrameBoundaries();
    tracker.read(frame(20, { opcode: text, masked: true }));
    expect(tracker.closeSeen).toBe(false);
    tracker.read(closeFrame.subarray(0, 1));
    expect(tracker.closeSeen).toBe(false);
    tracker.read(closeFrame.subarray(1));
    expect(tracker.closeSeen).toBe(true);
    expect(tracker.atBoundary).toBe(true);
  });

  it('never reaches the end of a frame whose 64-bit length no real frame has', () => {
    const header = Buffer.from([0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const tracker = new FrameBoundaries();
    tracker.read(header);
    tracker.read(Buffer.alloc(1 << 20));
    expect(tracker.atBoundary).toBe(false);
  });
});
