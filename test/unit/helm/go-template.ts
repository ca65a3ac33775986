// The structure of Helm's Go templates, read without Helm: the actions of a file (with their
// line), the blocks they open and close, and a skeleton of the file with every action taken
// out, which must still be YAML. Enough to catch an unclosed `if`, a stray `end`, an include of
// a template that does not exist or a broken indentation; not a renderer.

export interface Action {
  /** The text between the delimiters, without trim markers and surrounding spaces. */
  readonly body: string;
  readonly line: number;
  readonly start: number;
  readonly end: number;
}

/** The actions of a template, in order. Strings and comments inside an action may hold `}}`. */
export function actions(text: string): Action[] {
  const found: Action[] = [];
  let index = 0;
  while (true) {
    const open = text.indexOf('{{', index);
    if (open === -1) return found;
    let cursor = open + 2;
    let close = -1;
    while (cursor < text.length) {
      const char = text[cursor];
      if (text.startsWith('/*', cursor)) {
        const commentEnd = text.indexOf('*/', cursor + 2);
        if (commentEnd === -1) break;
        cursor = commentEnd + 2;
      } else if (char === '"' || char === '`') {
        cursor = skipString(text, cursor);
      } else if (text.startsWith('}}', cursor)) {
        close = cursor;
        break;
      } else {
        cursor += 1;
      }
    }
    const line = lineAt(text, open);
    if (close === -1) throw new Error(`line ${line}: "{{" is never closed`);
    const body = text
      .slice(open + 2, close)
      .replace(/^-\s/, '')
      .replace(/\s-$/, '')
      .trim();
    found.push({ body, line, start: open, end: close + 2 });
    index = close + 2;
  }
}

function skipString(text: string, start: number): number {
  const quote = text[start];
  let cursor = start + 1;
  while (cursor < text.length && text[cursor] !== quote) {
    if (quote === '"' && text[cursor] === '\\') cursor += 1;
    cursor += 1;
  }
  return cursor + 1;
}

function lineAt(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

const OPENERS = new Set(['if', 'range', 'with', 'define', 'block']);

/** Problems with the nesting of if/range/with/define/block, else and end; empty when well nested. */
export function blockProblems(all: readonly Action[]): string[] {
  const problems: string[] = [];
  const open: Action[] = [];
  for (const action of all) {
    if (action.body.startsWith('/*')) continue;
    const keyword = /^[a-z]+/.exec(action.body)?.[0] ?? '';
    if (OPENERS.has(keyword)) {
      open.push(action);
    } else if (keyword === 'else') {
      const innermost = open.at(-1);
      if (innermost === undefined || !/^(if|range|with)\b/.test(innermost.body)) {
        problems.push(`line ${action.line}: "else" outside if/range/with`);
      }
    } else if (keyword === 'end') {
      if (open.pop() === undefined) problems.push(`line ${action.line}: "end" closes nothing`);
    }
  }
  for (const action of open) problems.push(`line ${action.line}: "${action.body.split(/\s/)[0]}" is never closed`);
  return problems;
}

/** Names given to `define`. */
export function definedTemplates(all: readonly Action[]): string[] {
  return all.flatMap((action) => /^define\s+"([^"]+)"/.exec(action.body)?.[1] ?? []);
}

/** Names passed to `include` and `template`, with their line. */
export function includedTemplates(all: readonly Action[]): { name: string; line: number }[] {
  return all.flatMap((action) => [...action.body.matchAll(/\b(?:include|template)\s+"([^"]+)"/g)].map((match) => ({ name: match[1]!, line: action.line })));
}

/** Value paths read through `.Values.` (in the chart's templates) or `.values.` (in the sidecar templates' dict). */
export function valuePaths(all: readonly Action[]): { path: string[]; line: number }[] {
  const code = all.filter((action) => !action.body.startsWith('/*'));
  return code.flatMap((action) =>
    [...action.body.matchAll(/(?:\.Values|\$?\.values|\$values)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map((match) => ({
      path: match[1]!.slice(1).split('.'),
      line: action.line,
    })),
  );
}

/**
 * The template with its actions taken out: a line holding only actions disappears, and an
 * action inside a line becomes the scalar `x`. What is left of a YAML template must parse.
 */
export function skeleton(text: string, all: readonly Action[]): string {
  let result = '';
  let index = 0;
  for (const action of all) {
    result += text.slice(index, action.start) + '\u0000';
    index = action.end;
  }
  result += text.slice(index);
  return result
    .split('\n')
    .filter((line) => line.replaceAll('\u0000', '').trim() !== '' || !line.includes('\u0000'))
    .map((line) => line.replaceAll('\u0000', 'x'))
    .join('\n');
}

/** The text of each `define`, from after its action to its matching `end`. */
export function defineBodies(text: string, all: readonly Action[]): { name: string; text: string; actions: Action[] }[] {
  const bodies: { name: string; text: string; actions: Action[] }[] = [];
  const open: Action[] = [];
  for (const action of all) {
    const keyword = /^[a-z]+/.exec(action.body)?.[0] ?? '';
    if (OPENERS.has(keyword)) open.push(action);
    if (keyword !== 'end') continue;
    const opener = open.pop();
    const name = opener === undefined ? undefined : /^define\s+"([^"]+)"/.exec(opener.body)?.[1];
    if (opener === undefined || name === undefined) continue;
    const inner = all.filter((candidate) => candidate.start >= opener.end && candidate.end <= action.start);
    const offset = opener.end;
    bodies.push({
      name,
      text: text.slice(offset, action.start),
      actions: inner.map((candidate) => ({ ...candidate, start: candidate.start - offset, end: candidate.end - offset })),
    });
  }
  return bodies;
}
