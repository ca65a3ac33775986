import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { firstMissing, lineMatches, parseTour } from '../../support/readme-tour.ts';

// How the README's tour is read and checked; test/integration/fresh-clone.test.ts runs it.

const block = (body: string): string => `Intro.\n\n\`\`\`sh tour\n${body}\n\`\`\`\n\n\`\`\`sh\nnot-a-tour-command\n\`\`\`\n`;

describe('the tour blocks', () => {
  it('give each command its output lines and its lines in the npm start terminal; prose is left out', () => {
    expect(
      parseTour(
        block(
          [
            '# 1. A step, in prose',
            "curl -s 'http://127.0.0.1:15001/hello'",
            '#    {',
            '#      "path": "/hello",',
            '#    (first terminal) {"msg":"request"}',
            '# more prose',
            'curl -s http://127.0.0.1:15020/readyz',
          ].join('\n'),
        ),
      ),
    ).toEqual([
      { line: 5, command: "curl -s 'http://127.0.0.1:15001/hello'", output: ['{', '  "path": "/hello",'], log: ['{"msg":"request"}'] },
      { line: 10, command: 'curl -s http://127.0.0.1:15020/readyz', output: [], log: [] },
    ]);
  });

  it('refuse an output line that is not indented by four spaces, and output before any command', () => {
    expect(() => parseTour(block('curl -s x\n#  200'))).toThrow('README.md:5: an output line starts with "#" and four spaces');
    expect(() => parseTour(block('#    200'))).toThrow('README.md:4: output before any command');
  });

  it('of the README hold the tour', () => {
    const commands = parseTour(readFileSync(new URL('../../../README.md', import.meta.url), 'utf8'));

    expect(commands.length).toBeGreaterThan(20);
    expect(commands.filter((command) => command.output.length > 0).length).toBeGreaterThan(20);
  });
});

describe('an output checked against the README', () => {
  it('shows every expected line, in order, with other lines between them', () => {
    const printed = ['HTTP/1.1 504 Gateway Timeout', 'content-type: application/json', 'x-breakwater-reason: timeout', ''];

    expect(firstMissing(['HTTP/1.1 504 Gateway Timeout', '…', 'x-breakwater-reason: timeout'], printed)).toBeUndefined();
    expect(firstMissing(['x-breakwater-reason: timeout', 'HTTP/1.1 504 Gateway Timeout'], printed)).toBe('HTTP/1.1 504 Gateway Timeout');
    expect(firstMissing(['x-breakwater-reason: no_route'], printed)).toBe('x-breakwater-reason: no_route');
  });

  it('is empty when the README shows no output', () => {
    expect(firstMissing([], ['', ''])).toBeUndefined();
    expect(firstMissing([], ['503'])).toBe('(nothing)');
  });

  it('matches whole lines, … standing for any text', () => {
    expect(lineMatches('x-request-id: …', 'x-request-id: 4528485f-c4d6')).toBe(true);
    expect(lineMatches('01…  delivered  200', '01M96TB1FRJ9M8HKX5ASX7PTXQ  delivered  200')).toBe(true);
    expect(lineMatches('503', 'HTTP/1.1 503 Service Unavailable')).toBe(false);
    expect(lineMatches('{"state":"open"}', '{"state":"open"}  ')).toBe(true);
    expect(lineMatches('a.c', 'abc')).toBe(false);
  });
});
