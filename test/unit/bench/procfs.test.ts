import { describe, expect, it } from 'vitest';
import type { ProcessTimes, Snapshot } from '../../../bench/lib/procfs.ts';
import { clockTicksPerSecond, foreignCpuSeconds, parseCoreTimes, parseProcStat, treeCpuSeconds } from '../../../bench/lib/procfs.ts';

function proc(pid: number, ppid: number, ownTicks: number, reapedTicks = 0, startTicks = 1000): ProcessTimes {
  return { pid, ppid, startTicks, ownTicks, reapedTicks };
}

function snapshot(...processes: ProcessTimes[]): Snapshot {
  return { processes: new Map(processes.map((p) => [p.pid, p])), cores: [] };
}

describe('/proc parsing', () => {
  it('reads a stat line whose command name holds spaces and parentheses', () => {
    // fields 14-17 (utime, stime, cutime, cstime) = 30 12 5 2; field 22 (starttime) = 4242
    const line = '4711 (node (peer) x) S 4700 4711 4700 0 -1 4194560 100 0 0 0 30 12 5 2 20 0 7 0 4242 1000 200';
    expect(parseProcStat(line)).toEqual({ pid: 4711, ppid: 4700, startTicks: 4242, ownTicks: 42, reapedTicks: 7 });
  });

  it('reads per-core busy and total ticks, leaving out the all-cores line', () => {
    const stat = 'cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 10 1 5 80 4 0 0 0 0 0\ncpu1 1 0 1 100 0 0 0 0 0 0\nintr 1';
    expect(parseCoreTimes(stat)).toEqual([
      { busyTicks: 16, totalTicks: 100 },
      { busyTicks: 2, totalTicks: 102 },
    ]);
  });
});

describe('CPU between snapshots', () => {
  const harness = 100;

  it('counts the proxy tree, including workers, and a worker started meanwhile in full', () => {
    const before = snapshot(proc(harness, 1, 0), proc(200, harness, 50), proc(201, 200, 70));
    const after = snapshot(proc(harness, 1, 0), proc(200, harness, 60), proc(201, 200, 170), proc(202, 200, 5, 0, 9000));
    expect(treeCpuSeconds(before, after, 200)).toBeCloseTo((10 + 100 + 5) / clockTicksPerSecond);
  });

  it('leaves the benchmark’s own processes out of the foreign CPU', () => {
    const before = snapshot(proc(harness, 1, 10), proc(200, harness, 50), proc(300, 1, 20));
    const after = snapshot(proc(harness, 1, 30), proc(200, harness, 500), proc(300, 1, 45));
    expect(foreignCpuSeconds(before, after, harness)).toBeCloseTo(25 / clockTicksPerSecond);
  });

  it('counts the part of a foreign command’s life spent between the snapshots, though it has exited', () => {
    // 400 had used 30 ticks before; it ends with 80 and its parent 300 reaps it
    const before = snapshot(proc(harness, 1, 0), proc(300, 1, 20), proc(400, 300, 30));
    const after = snapshot(proc(harness, 1, 0), proc(300, 1, 20, 80));
    expect(foreignCpuSeconds(before, after, harness)).toBeCloseTo(50 / clockTicksPerSecond);
  });

  it('tells a new process from an old one that had the same pid', () => {
    // the worker 201 was replaced by a new one that got the same pid
    const before = snapshot(proc(harness, 1, 0), proc(200, harness, 50), proc(201, 200, 70, 0, 1000));
    const after = snapshot(proc(harness, 1, 0), proc(200, harness, 50), proc(201, 200, 5, 0, 9000));
    expect(treeCpuSeconds(before, after, 200)).toBeCloseTo(5 / clockTicksPerSecond);
  });
});
