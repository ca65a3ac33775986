// Runs Prometheus' own linter over a metrics exposition, so tests check the text format and
// naming rules against the tool users' CI would run, not against our reading of them.

import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The path of `promtool` on PATH; throws with the fix when it is missing. */
export function findPromtool(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'promtool');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory; keep looking.
    }
  }
  throw new Error('promtool not found: run bash scripts/install-system-tools.sh test');
}

export interface PromtoolResult {
  readonly exitCode: number | null;
  /** Everything promtool printed: one line per problem, empty when the metrics are clean. */
  readonly output: string;
}

/** `promtool check metrics` with `exposition` on stdin. */
export function checkMetrics(exposition: string): Promise<PromtoolResult> {
  const promtool = findPromtool();
  return new Promise((resolve, reject) => {
    const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ exitCode, output }));
    child.stdin.end(exposition);
  });
}
