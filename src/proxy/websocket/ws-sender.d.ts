// ws exports its frame writer as `Sender` (lib/sender.js, its methods marked public), and the
// tunnel writes its one close frame with it; @types/ws leaves the class out.

import type { Duplex } from 'node:stream';

declare module 'ws' {
  export class Sender {
    constructor(socket: Duplex);
    /** One frame of `data`, as the buffers to write (header and payload, or one of both). */
    static frame(data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }): Buffer[];
    /** Writes a close frame with `code` and `reason` (at most 123 bytes), masked when `mask`. */
    close(code: number, reason: string, mask: boolean, callback?: (error?: Error | null) => void): void;
  }
}
