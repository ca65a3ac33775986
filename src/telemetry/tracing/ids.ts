// W3C trace and span ids for Breakwater's spans, drawn in blocks, and the ratio samplers' rule
// applied to them.

import { randomFillSync } from 'node:crypto';
import { INVALID_SPANID, INVALID_TRACEID } from '@opentelemetry/api';
import type { IdGenerator } from '@opentelemetry/sdk-trace';

/** Bytes of randomness drawn at once: the ids of 256 traces. */
const idBlockBytes = 4096;

/**
 * The bound of TraceIdRatioBasedSampler: a trace id whose hash is below it is sampled. The
 * same arithmetic as the SDK's; a unit test holds the two to the same decisions.
 */
export function ratioBound(ratio: number): number {
  return ratio >= 1 ? 2 ** 32 : Math.floor(Math.max(0, ratio) * 0xffffffff);
}

/**
 * Random W3C ids, cut from a block of random bytes drawn (and hex-encoded) at once. It is the
 * SDK's id generator too, so that a new trace's server span gets the trace id the sampling
 * decision was made on.
 */
export class TraceIds implements IdGenerator {
  readonly #block = Buffer.allocUnsafe(idBlockBytes);
  #hex = '';
  #used = idBlockBytes;
  #chosenTraceId: string | undefined;
  /**
   * The ratio samplers' hash of the id newTraceId() returned last: its four 32-bit words
   * XORed, read from the bytes instead of parsed back from the hex.
   */
  lastTraceIdHash = 0;

  newTraceId(): string {
    const at = this.#take(16);
    const id = this.#hex.slice(2 * at, 2 * at + 32);
    // All zeros is no id in W3C Trace Context.
    if (id === INVALID_TRACEID) return this.newTraceId();
    const block = this.#block;
    this.lastTraceIdHash = (block.readUInt32BE(at) ^ block.readUInt32BE(at + 4) ^ block.readUInt32BE(at + 8) ^ block.readUInt32BE(at + 12)) >>> 0;
    return id;
  }

  /** Makes `traceId` the id of the next trace the SDK starts; undefined lets it draw one. */
  choose(traceId: string | undefined): void {
    this.#chosenTraceId = traceId;
  }

  generateTraceId(): string {
    const chosen = this.#chosenTraceId;
    if (chosen === undefined) return this.newTraceId();
    this.#chosenTraceId = undefined;
    return chosen;
  }

  generateSpanId(): string {
    const at = this.#take(8);
    const id = this.#hex.slice(2 * at, 2 * at + 16);
    return id === INVALID_SPANID ? this.generateSpanId() : id;
  }

  /** The offset of `bytes` fresh random bytes in the block, drawing a new block when needed. */
  #take(bytes: number): number {
    if (this.#used + bytes > idBlockBytes) {
      randomFillSync(this.#block);
      // One encoding for the whole block: each id is then a slice of this string.
      this.#hex = this.#block.toString('hex');
      this.#used = 0;
    }
    const at = this.#used;
    this.#used += bytes;
    return at;
  }
}

