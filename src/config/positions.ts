// Maps a path inside the parsed config (`routes[0].retry.perTryTimeout`) back to the line and
// column in the YAML text, so every problem points at the key or value to fix.

import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node } from 'yaml';

export type PathSegment = string | number;

export interface Position {
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
}

/** The name of item `index` of the list at `list` (a route's or listener's), if it has one. */
export type ItemName = (list: readonly PathSegment[], index: number) => string | undefined;

// Names as the schema allows them show as they are; anything else is quoted, so that a
// malformed name cannot make the path ambiguous.
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * `['routes', 2, 'retry', 'perTryTimeout']` → `routes[2].retry.perTryTimeout`, or with
 * `nameOf` giving list items their names, `routes[2](charge).retry.perTryTimeout`.
 */
export function formatPath(path: readonly PathSegment[], nameOf?: ItemName): string {
  let text = '';
  for (const [position, segment] of path.entries()) {
    if (typeof segment === 'number') {
      text += `[${segment}]`;
      const name = nameOf?.(path.slice(0, position), segment);
      if (name !== undefined) text += `(${PLAIN_NAME.test(name) ? name : JSON.stringify(name)})`;
    } else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

/** A locator for the text of a config file, for tools that show where values come from. */
export function locatorFor(text: string): YamlLocator {
  const lines = new LineCounter();
  return new YamlLocator(parseDocument(text, { lineCounter: lines, prettyErrors: false }), lines);
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

  /**
   * Where the key at `path` is written, or undefined when the file does not write it (the
   * value then comes from a default): what `breakwater explain` shows beside each value.
   */
  find(path: readonly PathSegment[]): Position | undefined {
    let node: unknown = this.#doc.contents;
    let start: number | undefined;
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(this.#doc);
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
        if (!pair) return undefined;
        start = this.#start(pair.key);
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
        node = node.items[segment];
        start = this.#start(node);
      } else {
        return undefined;
      }
    }
    return start === undefined ? undefined : this.at(start);
  }

  #start(node: unknown): number | undefined {
    if (node === null || typeof node !== 'object' || !('range' in node)) return undefined;
    const range = (node as Node).range;
    return range ? range[0] : undefined;
  }
}
