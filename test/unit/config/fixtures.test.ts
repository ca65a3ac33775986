import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allProblems, formatProblem, parseConfig } from '../../../src/config/load.ts';
import { lintConfig } from '../../../src/lint/warnings.ts';

const fixtures = new URL('../../fixtures/config/', import.meta.url).pathname;
const yamlFiles = (folder: string): string[] => readdirSync(join(fixtures, folder)).filter((name) => name.endsWith('.yaml')).sort();

describe('invalid config fixtures', () => {
  // Each file names, in `# expect: LINE:COL path: message` comments, every problem it must produce.
  it.each(yamlFiles('invalid'))('%s reports exactly the problems it names', (name) => {
    const text = readFileSync(join(fixtures, 'invalid', name), 'utf8');
    const expected = [...text.matchAll(/^# expect: (.+)$/gm)].map((match) => `${name}:${match[1]}`);
    expect(expected.length).toBeGreaterThan(0);

    const result = parseConfig(text, name);

    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map(formatProblem)).toEqual(expected);
  });
});

describe('valid config fixtures', () => {
  it.each(yamlFiles('valid'))('%s is valid, without warnings', (name) => {
    const result = parseConfig(readFileSync(join(fixtures, 'valid', name), 'utf8'), name, { lint: lintConfig });
    expect(allProblems(result).map(formatProblem)).toEqual([]);
  });
});
