// The README's tour as data: its ```sh tour blocks, each command with the output the README
// says it prints. The README is the only copy of the tour, so what it claims is what the tests
// run (test/integration/fresh-clone.test.ts).
//
// In a tour block:
//   a line not starting with `#`       a command, run by bash as a user pastes it
//   `# text`                            prose for the reader
//   `#    LINE` (# and four spaces)     a line the command above prints
//   `#    (first terminal) LINE`        a line that appears in the terminal running `npm start`
// `…` in an expected line stands for any text; a line that is only `…` marks lines left out.
// The expected lines must appear in the output in the README's order, other lines between them.

export interface TourCommand {
  /** The README's line number of the command (1-based), for messages. */
  readonly line: number;
  readonly command: string;
  /** Lines the command prints (stdout and stderr together). */
  readonly output: readonly string[];
  /** Lines the `npm start` terminal shows after the command starts. */
  readonly log: readonly string[];
}

const fence = /^```(.*)$/;
const firstTerminal = '(first terminal) ';

/** The commands of every ```sh tour block, in order. Throws on a block it cannot read. */
export function parseTour(markdown: string): TourCommand[] {
  const commands: { line: number; command: string; output: string[]; log: string[] }[] = [];
  let inTour = false;
  let inOtherBlock = false;
  for (const [index, text] of markdown.split('\n').entries()) {
    const lineNumber = index + 1;
    const opening = fence.exec(text);
    if (opening !== null) {
      if (inTour || inOtherBlock) {
        inTour = inOtherBlock = false;
      } else if (opening[1]!.trim().split(/\s+/).join(' ') === 'sh tour') {
        inTour = true;
      } else {
        inOtherBlock = true;
      }
      continue;
    }
    if (!inTour || text.trim() === '') continue;
    if (!text.startsWith('#')) {
      commands.push({ line: lineNumber, command: text, output: [], log: [] });
      continue;
    }
    if (!/^# {2}/.test(text)) continue; // prose
    if (!text.startsWith('#    ')) throw new Error(`README.md:${lineNumber}: an output line starts with "#" and four spaces: ${text}`);
    const current = commands.at(-1);
    if (current === undefined) throw new Error(`README.md:${lineNumber}: output before any command`);
    const expected = text.slice(5).trimEnd();
    if (expected.startsWith(firstTerminal)) current.log.push(expected.slice(firstTerminal.length));
    else current.output.push(expected);
  }
  if (inTour) throw new Error('README.md: a ```sh tour block is not closed');
  return commands;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whether `actual` is the line `expected` shows, `…` standing for any text. */
export function lineMatches(expected: string, actual: string): boolean {
  return new RegExp(`^${expected.split('…').map(escapeRegExp).join('.*')}$`, 's').test(actual.trimEnd());
}

/** The output's lines as a terminal shows them: without carriage returns. */
export function outputLines(output: string): string[] {
  return output.replaceAll('\r', '').split('\n');
}

/**
 * The first expected line that `actual` does not show in order, or undefined when it shows
 * them all. With no expected lines, the output must be empty.
 */
export function firstMissing(expected: readonly string[], actual: readonly string[]): string | undefined {
  const wanted = expected.filter((line) => line !== '…');
  if (wanted.length === 0) {
    const printed = actual.find((line) => line.trim() !== '');
    return printed === undefined ? undefined : '(nothing)';
  }
  let at = 0;
  for (const line of wanted) {
    while (at < actual.length && !lineMatches(line, actual[at]!)) at++;
    if (at === actual.length) return line;
    at++;
  }
  return undefined;
}
