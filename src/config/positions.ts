// Maps a path inside the parsed config (`routes[0].retry.perTryTimeout`) back to the line and
// column in the YAML text, so every problem points at the key or value to fix.

import { isAlias, isMap, isScalar, isSeq } from 'yaml';
import type { Document, LineCounter, Node } from 'yaml';

export type PathSegment = string | number;

export interface Position {
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
}

/** `['routes', 0, 'retry', 'perTryTimeout']` → `routes[0].retry.perTryTimeout`. */
export function formatPath(path: readonly PathSegment[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

export class YamlLocator {
  readonly #doc: Document;
  readonly #lines: LineCounter;

  constructor(doc: Document, lines: LineCounter) {
    this.#doc = doc;
    this.#lines = lines;
  }

  /** The position of `offset` in the text. */
  at(offset: number): Position {
    return this.#lines.linePos(offset);
  }

  /**
   * Where the value at `path` starts, or its key when `part` is `'key'`. A path that leaves the
   * document (a missing key) gives the position of the deepest node that exists.
   */
  locate(path: readonly PathSegment[], part: 'key' | 'value' = 'value'): Position {
    let node: unknown = this.#doc.contents;
    let key: Node | undefined;
    let deepest = this.#start(node) ?? 0;
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(this.#doc);
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
        if (!pair) return this.at(deepest);
        key = pair.key as Node;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
        key = undefined;
        node = node.items[segment];
      } else {
        return this.at(deepest);
      }
      deepest = this.#start(node) ?? this.#start(key) ?? deepest;
    }
    const keyStart = this.#start(key);
    const valueIsEmpty = node === null || node === undefined || (isScalar(node) && node.value === null);
    if (keyStart !== undefined && (part === 'key' || valueIsEmpty)) return this.at(keyStart);
    return this.at(deepest);
  }

  #start(node: unknown): number | undefined {
    if (node === null || typeof node !== 'object' || !('range' in node)) return undefined;
    const range = (node as Node).range;
    return range ? range[0] : undefined;
  }
}
