// The shipped alert rules, checked by Prometheus' own tool: `promtool check rules` parses every
// expression and template, and `promtool test rules` runs the unit tests beside the rules,
// which feed synthetic series and say where each alert must fire and where it must not.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findPromtool } from '../support/promtool.ts';

const rulesDir = new URL('../../deploy/prometheus/', import.meta.url).pathname;

interface Run {
  readonly exitCode: number | null;
  readonly output: string;
}

function promtool(args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(findPromtool(), args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ exitCode, output }));
  });
}

describe('alert rules under promtool', () => {
  it('pass promtool check rules with every lint', async () => {
    const run = await promtool(['check', 'rules', '--lint=all', '--lint-fatal', 'breakwater-rules.yaml'], rulesDir);

    expect(run.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(run.exitCode).toBe(0);
  });

  it('pass their promtool unit tests', async () => {
    const run = await promtool(['test', 'rules', 'breakwater-rules.test.yaml'], rulesDir);

    expect(run.output).toContain('SUCCESS');
    expect(run.exitCode).toBe(0);
  });

  it('fail the unit tests when an alert fires where it should not', async () => {
    // The unit tests next to a rule whose threshold is far too low: the quiet cases must fail.
    const dir = await mkdtemp(join(tmpdir(), 'breakwater-rules-'));
    try {
      const rules = await readFile(join(rulesDir, 'breakwater-rules.yaml'), 'utf8');
      const lowered = rules.replace('(rate(breakwater_requests_total[5m]))\n          > 0.05', '(rate(breakwater_requests_total[5m]))\n          > 0.001');
      expect(lowered).not.toBe(rules);
      await writeFile(join(dir, 'breakwater-rules.yaml'), lowered);
      await writeFile(join(dir, 'breakwater-rules.test.yaml'), await readFile(join(rulesDir, 'breakwater-rules.test.yaml'), 'utf8'));

      const run = await promtool(['test', 'rules', 'breakwater-rules.test.yaml'], dir);

      expect(run.output).toContain('alertname: BreakwaterHighTimeoutRate');
      expect(run.exitCode).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
