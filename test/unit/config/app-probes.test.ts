// telemetry.appProbes: the service's probes that the telemetry port serves as
// /app-health/NAME/KIND, checked like every other key of the file.

import { describe, expect, it } from 'vitest';
import { formatProblem, parseConfig } from '../../../src/config/load.ts';

function parse(probes: string) {
  return parseConfig(`telemetry:\n  appProbes:\n${probes}\n`, 'test.yaml');
}

function problems(probes: string): string[] {
  const result = parse(probes);
  return result.ok ? [] : result.problems.map(formatProblem);
}

describe('telemetry.appProbes', () => {
  it("defaults the path to / and the timeout to Kubernetes' 1 s", () => {
    const result = parse('    app: {readyz: {port: 8080}, livez: {port: 8080, path: /live?deep=1, timeout: 250ms}}');

    expect(result.ok ? result.config.telemetry.appProbes : result.problems).toEqual({
      app: {
        readyz: { port: 8080, path: '/', timeoutMs: 1000 },
        livez: { port: 8080, path: '/live?deep=1', timeoutMs: 250 },
      },
    });
  });

  it('refuses unknown kinds and keys, with a suggestion', () => {
    expect(problems('    app: {ready: {port: 8080}}')).toEqual([expect.stringMatching(/telemetry\.appProbes\.app.*ready.*readyz/)]);
    expect(problems('    app: {readyz: {port: 8080, timeoutSeconds: 1}}')).toEqual([expect.stringMatching(/telemetry\.appProbes\.app\.readyz.*timeoutSeconds/)]);
  });

  it('refuses a name with no probe, a path without a leading slash, a port out of range and a zero timeout', () => {
    expect(problems('    app: {}')).toHaveLength(1);
    expect(problems('    app: {readyz: {port: 8080, path: ready}}')).toEqual([expect.stringMatching(/path: must be a path starting with "\/"/)]);
    expect(problems('    app: {readyz: {port: 70000}}')).toEqual([expect.stringMatching(/telemetry\.appProbes\.app\.readyz\.port/)]);
    expect(problems('    app: {readyz: {port: 8080, timeout: 0}}')).toEqual([expect.stringMatching(/timeout: must be greater than 0/)]);
  });

  it("refuses a port of Breakwater's own, which would have Breakwater probe itself", () => {
    expect(problems('    app: {readyz: {port: 15020}}')).toEqual([expect.stringMatching(/port: port 15020 is the telemetry server of Breakwater itself/)]);
    expect(problems('    app: {livez: {port: 15006}}')).toEqual([expect.stringMatching(/port 15006 is listener inbound/)]);
  });
});
