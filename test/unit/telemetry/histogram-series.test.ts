import { describe, expect, it } from 'vitest';
import { flushHistograms, HistogramSeries } from '../../../src/telemetry/histogram-series.ts';
import { Histogram, Registry } from '../../../src/telemetry/prom.ts';

const buckets = [0.01, 0.1, 1];

/** A histogram whose series are observed through HistogramSeries, flushed when the registry is read. */
function batched(registry: Registry, name: string) {
  const series: HistogramSeries[] = [];
  const histogram = new Histogram({ name, help: 'h', labelNames: ['route', 'upstream'], buckets, registers: [registry], collect: () => flushHistograms(series) });
  return {
    series: (labels: readonly string[]): HistogramSeries => {
      const made = new HistogramSeries(histogram, labels);
      series.push(made);
      return made;
    },
  };
}

/** The exposition lines of one family, its name replaced so that two families compare. */
async function lines(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.getSingleMetricAsString(name);
  return text.split('\n').map((line) => line.replaceAll(name, 'x'));
}

describe('HistogramSeries', () => {
  it('exports what prom-client would have for the same observations: buckets, +Inf, sum and count', async () => {
    const registry = new Registry();
    const reference = new Histogram({ name: 'reference', help: 'h', labelNames: ['route', 'upstream'], buckets, registers: [registry] });
    const observed = batched(registry, 'observed').series(['a', 'b']);
    // On a bound, between bounds, zero, above the last bound.
    const values = [0.01, 0.005, 0, 0.5, 0.1, 1, 7, 0.011];
    for (const value of values) {
      reference.labels('a', 'b').observe(value);
      observed.observe(value);
    }
    expect(await lines(registry, 'observed')).toEqual(await lines(registry, 'reference'));
    expect(await lines(registry, 'observed')).toContain('x_bucket{le="0.01",route="a",upstream="b"} 3');
    expect(await lines(registry, 'observed')).toContain('x_count{route="a",upstream="b"} 8');
  });

  it('counts each observation once however often the registry is read', async () => {
    const registry = new Registry();
    const observed = batched(registry, 'observed').series(['a', 'b']);
    observed.observe(0.05);
    await registry.metrics();
    await registry.metrics();
    observed.observe(0.05);
    expect(await lines(registry, 'observed')).toContain('x_bucket{le="0.1",route="a",upstream="b"} 2');
    expect(await lines(registry, 'observed')).toContain('x_count{route="a",upstream="b"} 2');
  });

  it('is exported at zero from its creation, before any observation', async () => {
    const registry = new Registry();
    batched(registry, 'observed').series(['a', 'b']);
    expect(await lines(registry, 'observed')).toContain('x_count{route="a",upstream="b"} 0');
  });

  it('shares one series between two objects with the same labels, and keeps labels apart', async () => {
    const registry = new Registry();
    const family = batched(registry, 'observed');
    const first = family.series(['a', 'b']);
    first.observe(0.05);
    await registry.metrics();
    const second = family.series(['a', 'b']);
    second.observe(0.5);
    family.series(['a', 'c']).observe(5);
    const exported = await lines(registry, 'observed');
    expect(exported).toContain('x_count{route="a",upstream="b"} 2');
    expect(exported).toContain('x_bucket{le="0.1",route="a",upstream="b"} 1');
    expect(exported).toContain('x_count{route="a",upstream="c"} 1');
    expect(exported).toContain('x_bucket{le="1",route="a",upstream="c"} 0');
  });

  it('leaves out a value that is not a finite number, which prom-client would refuse', async () => {
    const registry = new Registry();
    const observed = batched(registry, 'observed').series(['a', 'b']);
    observed.observe(Number.NaN);
    observed.observe(Number.POSITIVE_INFINITY);
    observed.observe(0.2);
    expect(await lines(registry, 'observed')).toContain('x_count{route="a",upstream="b"} 1');
    expect(await lines(registry, 'observed')).toContain('x_sum{route="a",upstream="b"} 0.2');
  });
});
