// The sidecar's resources against what Breakwater was measured to use. The rule: the memory
// limit is at least 1.25 times the highest peak RSS the benchmark recorded, in bench/sizing.json
// or in the newest run under bench/results/ (a local `npm run bench`), so that a busy pod is
// not OOM-killed; the memory request covers Breakwater idle.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url).pathname;
const MIB = 1024 * 1024;
const HEADROOM = 1.25;

interface Resources {
  requests: { cpu: string; memory: string };
  limits: { memory: string };
}

const values = parse(await readFile(join(root, 'helm/breakwater/values.yaml'), 'utf8')) as { sidecar: { resources: Resources } };
const sizing = JSON.parse(await readFile(join(root, 'bench/sizing.json'), 'utf8')) as { peakRssMiB: number; idleRssMiB: number };

/** A Kubernetes memory quantity in bytes: 384Mi, 1Gi, 400M, 268435456. */
function bytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (match === null) throw new Error(`not a memory quantity: ${quantity}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[match[2] ?? ''] ?? 1;
  return Number(match[1]) * unit;
}

/** The highest peak RSS of a Breakwater target in the newest local benchmark run, if any. */
async function newestBenchPeak(): Promise<{ file: string; bytes: number } | undefined> {
  const dir = join(root, 'bench/results');
  const files = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith('.json')).sort();
  const newest = files.at(-1);
  if (newest === undefined) return undefined;
  const run = JSON.parse(await readFile(join(dir, newest), 'utf8')) as { samples: { target: string; peakRssBytes?: number }[] };
  const peaks = run.samples.filter((sample) => sample.target.startsWith('breakwater')).map((sample) => sample.peakRssBytes ?? 0);
  return peaks.length === 0 ? undefined : { file: `bench/results/${newest}`, bytes: Math.max(...peaks) };
}

describe('sidecar.resources against the measured figures', () => {
  it(`limits memory to at least ${HEADROOM} times the highest peak RSS the benchmark recorded`, async () => {
    const recorded = [{ file: 'bench/sizing.json', bytes: sizing.peakRssMiB * MIB }];
    const local = await newestBenchPeak();
    if (local !== undefined) recorded.push(local);
    const limit = bytes(values.sidecar.resources.limits.memory);

    for (const peak of recorded) {
      expect(limit, `limit ${values.sidecar.resources.limits.memory} against ${(peak.bytes / MIB).toFixed(1)} MiB in ${peak.file}`).toBeGreaterThanOrEqual(
        peak.bytes * HEADROOM,
      );
    }
  });

  it('requests at least the memory Breakwater holds idle', () => {
    expect(bytes(values.sidecar.resources.requests.memory)).toBeGreaterThanOrEqual(sizing.idleRssMiB * MIB);
    expect(bytes(values.sidecar.resources.requests.memory)).toBeLessThanOrEqual(bytes(values.sidecar.resources.limits.memory));
  });

  it('reads Kubernetes memory quantities as Kubernetes does', () => {
    expect(bytes('384Mi')).toBe(384 * MIB);
    expect(bytes('1Gi')).toBe(1024 * MIB);
    expect(bytes('400M')).toBe(400e6);
    expect(bytes('268435456')).toBe(256 * MIB);
  });
});
