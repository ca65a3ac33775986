// Large request bodies produced on demand, and the proxy's memory while they stream through it.

import { Readable } from 'node:stream';
import { residentBytes } from './process.ts';

const chunk = Buffer.alloc(256 * 1024, 7);

/** A body of `total` bytes produced on demand, never held whole. */
export function generated(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(chunk.length, total - sent);
      sent += size;
      this.push(size === chunk.length ? chunk : chunk.subarray(0, size));
    },
  });
}

/** Samples the process's RSS while `transfer` runs; returns the largest value seen. */
export async function peakRssDuring(pid: number, transfer: Promise<unknown>): Promise<number> {
  let peak = await residentBytes(pid);
  let done = false;
  void transfer.finally(() => (done = true));
  while (!done) {
    peak = Math.max(peak, await residentBytes(pid));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Math.max(peak, await residentBytes(pid));
}
