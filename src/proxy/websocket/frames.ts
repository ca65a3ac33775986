// Where the WebSocket frames of one direction of a tunnel begin and end, read from the bytes as
// they pass and never changed. The tunnel forwards bytes as they come; it needs the frame
// boundaries only to close at one (a close frame put in the middle of another frame would be
// read as part of it), and to know whether a side has already sent its close frame.
//
// Only the header's length fields are read (RFC 6455 section 5.2): the payload is skipped by
// count, never unmasked, inflated or copied. ws's Receiver, the parser the rest of Breakwater's
// WebSocket code leans on, reassembles and unmasks whole messages (a copy of each, up to its
// size) and refuses the compressed frames a permessage-deflate it did not negotiate carries,
// so it cannot watch a tunnel pass through (docs/decisions/0013-websocket-library.md).

/** Opcode of a close frame. */
const closeOpcode = 0x8;

/** The longest frame header: 2 bytes, a 64-bit length and a masking key. */
const maxHeaderBytes = 14;

export class FrameBoundaries {
  /** Header bytes of the frame being read, while its header is incomplete. */
  readonly #header = Buffer.alloc(maxHeaderBytes);
  #headerBytes = 0;
  /** The header's length once its first two bytes are known; 2 before that. */
  #headerLength = 2;
  /** Payload bytes of the current frame still to pass. */
  #payloadLeft = 0;
  #closeSeen = false;

  /** True between two frames: the next byte starts a frame. */
  get atBoundary(): boolean {
    return this.#headerBytes === 0 && this.#payloadLeft === 0;
  }

  /** True once a close frame's header has passed this way. */
  get closeSeen(): boolean {
    return this.#closeSeen;
  }

  /**
   * Reads `chunk` and returns how many of its bytes were read: all of them, or with
   * `stopAtBoundary` only those up to the first frame boundary (0 when it starts at one).
   */
  read(chunk: Buffer, stopAtBoundary = false): number {
    let offset = 0;
    const length = chunk.length;
    if (stopAtBoundary && this.atBoundary) return 0;
    while (offset < length) {
      if (this.#payloadLeft > 0) {
        const skipped = Math.min(this.#payloadLeft, length - offset);
        this.#payloadLeft -= skipped;
        offset += skipped;
      } else {
        this.#header[this.#headerBytes++] = chunk[offset++]!;
        if (this.#headerBytes === 2) this.#headerLength = headerLength(this.#header);
        if (this.#headerBytes === this.#headerLength) this.#startPayload();
      }
      if (stopAtBoundary && this.atBoundary) return offset;
    }
    return offset;
  }

  #startPayload(): void {
    const header = this.#header;
    if ((header[0]! & 0x0f) === closeOpcode) this.#closeSeen = true;
    const length7 = header[1]! & 0x7f;
    // A 64-bit length past what a double holds exactly never ends: such a frame is not real.
    this.#payloadLeft = length7 < 126 ? length7 : length7 === 126 ? header.readUInt16BE(2) : header.readUInt32BE(2) * 2 ** 32 + header.readUInt32BE(6);
    this.#headerBytes = 0;
    this.#headerLength = 2;
  }
}

/** A frame header's length from its first two bytes: the extended length's and the mask's bytes added. */
function headerLength(header: Buffer): number {
  const length7 = header[1]! & 0x7f;
  const masked = (header[1]! & 0x80) !== 0;
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (masked ? 4 : 0);
}
