import { describe, expect, it } from 'vitest';
import { formatRatio, interleavedTable, memoryTable, saturationTable } from '../../../bench/lib/report.ts';
import { parseStoreBuckets, storeP99Ms } from '../../../bench/lib/store-histogram.ts';
import type { Sample } from '../../../bench/lib/stats.ts';
import { comparePaired, median, medianInterval, roundsToUse, summarise } from '../../../bench/lib/stats.ts';
import { renderTemplate } from '../../../bench/lib/template.ts';
import { errorCount, parseWrkReport, requestsPerSecond } from '../../../bench/lib/wrk.ts';

const reportLine =
  'BENCH_WRK_JSON {"requests":20000,"durationUs":10000000,"bytes":20480000,"pacing":"fixed-rate",' +
  '"latencyUs":{"mean":210.5,"p50":180,"p90":260,"p99":400,"p999":1900,"max":5000},' +
  '"errors":{"connect":0,"read":1,"write":0,"status":2,"timeout":3}}';

function sample(overrides: Partial<Sample>): Sample {
  return {
    target: 'nginx',
    phase: 'saturation',
    round: 1,
    requests: 500_000,
    rps: 50_000,
    errors: 0,
    latencyUs: { p50: 800, p90: 1200, p99: 1800, p999: 3000 },
    proxyCpuUsPerRequest: 18,
    proxyCpuShare: 0.9,
    peakRssBytes: 7 * 1024 * 1024,
    foreignCpuShare: 0.01,
    coreBusy: [1, 0.9],
    clean: true,
    ...overrides,
  };
}

describe('wrk report', () => {
  it('reads the report line among wrk’s usual output', () => {
    const output = `Running 10s test @ http://127.0.0.1:1/\n  1 threads and 50 connections\n${reportLine}\n`;
    const report = parseWrkReport(output);
    expect(report.latencyUs.p99).toBe(400);
    expect(report.pacing).toBe('fixed-rate');
    expect(requestsPerSecond(report)).toBe(2000);
    expect(errorCount(report)).toBe(6);
  });

  it('refuses output without a report line, showing what wrk said', () => {
    expect(() => parseWrkReport('unable to connect to 127.0.0.1:1 Connection refused\n')).toThrow(/Connection refused/);
  });

  it('refuses a report with a missing field instead of reading it as zero', () => {
    const broken = reportLine.replace('"p99":400,', '');
    expect(() => parseWrkReport(broken)).toThrow('latencyUs.p99');
  });
});

describe('summaries over rounds', () => {
  it('takes the middle value, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('uses only clean rounds when at least two are clean', () => {
    const rounds = [sample({ round: 1, rps: 10 }), sample({ round: 2, clean: false, rps: 99 }), sample({ round: 3, rps: 30 })];
    expect(roundsToUse(rounds).map((s) => s.round)).toEqual([1, 3]);
    const summary = summarise(rounds);
    expect(summary.rps).toEqual({ median: 20, min: 10, max: 30 });
    expect([summary.roundsUsed, summary.roundsClean, summary.roundsRun]).toEqual([2, 2, 3]);
  });

  it('falls back to every round when fewer than two are clean', () => {
    const rounds = [sample({ round: 1, clean: false }), sample({ round: 2 }), sample({ round: 3, clean: false })];
    expect(roundsToUse(rounds)).toHaveLength(3);
  });

  it('reports the largest peak RSS and the total of errors over the rounds used', () => {
    const summary = summarise([sample({ peakRssBytes: 5, errors: 1 }), sample({ peakRssBytes: 9, errors: 2 })]);
    expect(summary.peakRssBytes).toBe(9);
    expect(summary.errors).toBe(3);
  });

  it('takes the median idle RSS over the starts that read one', () => {
    const summary = summarise([sample({ idleRssBytes: 50 }), sample({ idleRssBytes: 70 }), sample({ idleRssBytes: 60 }), sample({})]);
    expect(summary.idleRssBytes).toBe(60);
    expect(summarise([sample({})]).idleRssBytes).toBeUndefined();
  });
});

describe('interleaved comparison', () => {
  const run = (target: string, round: number, rps: number, overrides: Partial<Sample> = {}) =>
    sample({ target, phase: 'interleaved', round, rps, proxyCpuUsPerRequest: 1e6 / rps, ...overrides });

  it('compares runs of the same cycle, so that a slow cycle moves both sides of its pair', () => {
    // The machine runs at another speed in each cycle: each row's median comes from another
    // cycle (8,000 and 6,000 read 0.75), while two pairs of three read 0.9.
    const samples = [run('breakwater', 1, 10_000), run('traced', 1, 9_000), run('breakwater', 2, 6_000), run('traced', 2, 5_400), run('breakwater', 3, 8_000), run('traced', 3, 6_000)];
    const comparison = comparePaired(samples, 'traced', 'breakwater');
    expect(comparison?.rpsRatio.median).toBeCloseTo(0.9);
    expect(comparison?.cpuRatio).toBeCloseTo(0.9);
    expect(comparison?.pairs).toBe(3);
  });

  it('pairs only cycles where both rows ran, and leaves disturbed pairs out when enough clean ones exist', () => {
    const samples = [
      run('breakwater', 1, 10_000),
      run('traced', 1, 9_000),
      run('breakwater', 2, 10_000),
      run('traced', 2, 2_000, { clean: false }),
      run('breakwater', 3, 10_000),
      run('traced', 3, 8_000),
      run('traced', 4, 1_000),
    ];
    const comparison = comparePaired(samples, 'traced', 'breakwater');
    expect(comparison?.pairs).toBe(2);
    expect(comparison?.rpsRatio.median).toBeCloseTo(0.85);
    expect(comparePaired(samples, 'policies', 'breakwater')).toBeUndefined();
  });

  it('bounds the median by order statistics: the 6th smallest and largest of 20 at 95%', () => {
    const values = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(medianInterval(values)).toEqual({ low: 6, high: 15 });
    // P(Binomial(5, ½) = 0) = 1/32 > 2.5%: five values bound nothing at 95%.
    expect(medianInterval([1, 2, 3, 4, 5])).toBeUndefined();
    expect(medianInterval([6, 1, 5, 2, 4, 3])).toEqual({ low: 1, high: 6 });
  });

  it('shows each row against the base with the interval of its median ratio', () => {
    const samples = Array.from({ length: 20 }, (_, i) => [run('breakwater', i + 1, 10_000), run('traced', i + 1, 8_000 + 100 * i)]).flat();
    const summaries = ['breakwater', 'traced'].map((name) => summarise(samples.filter((s) => s.target === name)));
    const lines = interleavedTable(summaries, [comparePaired(samples, 'traced', 'breakwater')!]).split('\n');
    const header = lines[0]?.split(' | ') ?? [];
    const row = lines.find((l) => l.startsWith('| traced '))?.split(' | ') ?? [];
    expect(row[header.indexOf('compared with')]).toBe('breakwater');
    expect(row[header.indexOf('× base, median of pairs')]).toBe('0.90');
    expect(row[header.indexOf('95% interval of that median')]).toBe('0.85–0.94');
    expect(row[header.indexOf('pairs')]).toBe('20');
    // One start: nothing to tell apart.
    expect(row[header.indexOf('median of each start')]).toBe('–');
  });

  it('gives the median ratio of each start, since starts of one build run at different speeds', () => {
    // Two starts of five cycles: the second start's traced process runs slower throughout.
    const ratiosOf = [0.9, 0.88, 0.92, 0.9, 0.91, 0.8, 0.82, 0.79, 0.81, 0.8];
    const samples = ratiosOf.flatMap((ratio, i) => {
      const start = i < 5 ? 1 : 2;
      return [run('breakwater', i + 1, 10_000, { start }), run('traced', i + 1, 10_000 * ratio, { start })];
    });
    const comparison = comparePaired(samples, 'traced', 'breakwater')!;
    expect(comparison.byStart.map((r) => r.toFixed(2))).toEqual(['0.90', '0.80']);
    expect(comparison.rpsRatio.median).toBeCloseTo(0.85);
    const summaries = ['breakwater', 'traced'].map((name) => summarise(samples.filter((s) => s.target === name)));
    const lines = interleavedTable(summaries, [comparison]).split('\n');
    const header = lines[0]?.split(' | ') ?? [];
    const row = lines.find((l) => l.startsWith('| traced '))?.split(' | ') ?? [];
    expect(row[header.indexOf('median of each start')]).toBe('0.90 0.80');
  });
});

describe('store latency from /metrics', () => {
  const exposition = (counts: Record<string, number[]>) =>
    Object.entries(counts)
      .flatMap(([operation, buckets]) =>
        ['0.001', '0.005', '0.05', '+Inf'].map((le, i) => `breakwater_store_operation_duration_seconds_bucket{store="bench",operation="${operation}",le="${le}"} ${buckets[i]}`),
      )
      .join('\n');

  it('gives the p99 of the operations made between two scrapes, by bucket bound', () => {
    const before = parseStoreBuckets(exposition({ take: [100, 100, 100, 100] }));
    // 1000 more takes: 985 under 1 ms, 10 under 5 ms, 5 under 50 ms.
    const after = parseStoreBuckets(exposition({ take: [1085, 1095, 1100, 1100], replace: [0, 0, 0, 0] }));
    expect(storeP99Ms(before, after)).toEqual({ take: 5 });
  });
});

describe('tables', () => {
  it('compares each row with the reference rows that were measured', () => {
    const direct = summarise([sample({ target: 'direct', rps: 100_000, proxyCpuUsPerRequest: undefined, proxyCpuShare: undefined, peakRssBytes: undefined })]);
    const nginx = summarise([sample({ target: 'nginx', rps: 50_000 })]);
    const lines = saturationTable([direct, nginx]).split('\n');
    const header = lines[0]?.split(' | ') ?? [];
    const nginxRow = lines.find((l) => l.startsWith('| nginx '))?.split(' | ') ?? [];
    expect(nginxRow[header.indexOf('× direct')]).toBe('0.50');
    expect(nginxRow[header.indexOf('× nginx')]).toBe('1.00');
    // undici-passthrough was not measured: nothing to compare with
    expect(nginxRow[header.indexOf('× undici-passthrough')]).toBe('–');
    expect(nginxRow[1]).toBe('50,000 [50,000–50,000]');
  });

  it('compares Breakwater rows with policies or tracing to plain Breakwater', () => {
    const plain = summarise([sample({ target: 'breakwater', rps: 20_000 })]);
    const policies = summarise([sample({ target: 'breakwater-policies', rps: 18_500 })]);
    const lines = saturationTable([plain, policies]).split('\n');
    const header = lines[0]?.split(' | ') ?? [];
    const row = lines.find((l) => l.startsWith('| breakwater-policies '))?.split(' | ') ?? [];
    expect(row[header.indexOf('× breakwater')]).toBe('0.93');
  });

  it('shows a dash rather than a ratio to nothing', () => {
    expect(formatRatio(5, undefined)).toBe('–');
    expect(formatRatio(5, 0)).toBe('–');
    expect(formatRatio(1, 3)).toBe('0.33');
  });
});

describe('peer configuration templates', () => {
  it('fills every placeholder and refuses one without a value', () => {
    expect(renderTemplate('listen @HOST@:@PORT@;', { HOST: '127.0.0.1', PORT: 8080 })).toBe('listen 127.0.0.1:8080;');
    expect(() => renderTemplate('listen @PORT@; pid @WORK@/x.pid;', { PORT: 1 })).toThrow('@WORK@');
  });
});

describe('memory table', () => {
  const MiB = 1024 * 1024;

  it('gives each target its idle RSS and its peak in each phase, in MiB', () => {
    const saturation = [summarise([sample({ target: 'breakwater', idleRssBytes: 60 * MiB, peakRssBytes: 100 * MiB })])];
    const fixedRate = [summarise([sample({ target: 'breakwater', phase: 'fixed-rate', idleRssBytes: 62 * MiB, peakRssBytes: 80 * MiB })])];
    const lines = memoryTable(saturation, fixedRate, 2000).split('\n');
    expect(lines[0]).toBe('| target | idle RSS MiB | peak RSS at saturation MiB | peak RSS at 2,000 req/s MiB |');
    expect(lines[2]).toBe('| breakwater | 61.0 | 100.0 | 80.0 |');
  });

  it('leaves out a target with no process of its own to measure', () => {
    const direct = summarise([sample({ target: 'direct', peakRssBytes: undefined })]);
    expect(memoryTable([direct], [], 2000).split('\n')).toHaveLength(2);
  });
});
