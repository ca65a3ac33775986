import { describe, expect, it } from 'vitest';
import { cfsQuotaLimit, cpuMaxLimit, turnsConcurrentMarkingOff, usableCpus, type ReadText } from '../../../src/runtime/marking.ts';

/** A file system holding only `files`. */
const filesOf =
  (files: Record<string, string>): ReadText =>
  (path) =>
    files[path];

describe('the CPUs Breakwater may use', () => {
  it('reads a cgroup v2 quota, and none when it is unlimited or malformed', () => {
    expect(cpuMaxLimit('50000 100000\n')).toBe(0.5);
    expect(cpuMaxLimit('200000 100000')).toBe(2);
    expect(cpuMaxLimit('max 100000\n')).toBeUndefined();
    expect(cpuMaxLimit('')).toBeUndefined();
  });

  it('reads a cgroup v1 quota, and none when it is -1', () => {
    expect(cfsQuotaLimit('100000\n', '100000\n')).toBe(1);
    expect(cfsQuotaLimit('-1\n', '100000\n')).toBeUndefined();
  });

  it('takes the smaller of the cores it may run on and its quota', () => {
    expect(usableCpus(8, filesOf({ '/sys/fs/cgroup/cpu.max': '100000 100000' }))).toBe(1);
    expect(usableCpus(1, filesOf({ '/sys/fs/cgroup/cpu.max': '400000 100000' }))).toBe(1);
    expect(usableCpus(4, filesOf({ '/sys/fs/cgroup/cpu.max': 'max 100000' }))).toBe(4);
    expect(usableCpus(4, filesOf({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '50000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }))).toBe(0.5);
    expect(usableCpus(2, filesOf({}))).toBe(2);
  });
});

describe("V8's concurrent marking", () => {
  it('is turned off with one CPU or less, and left on with more', () => {
    expect(turnsConcurrentMarkingOff(1, [])).toBe(true);
    expect(turnsConcurrentMarkingOff(0.5, ['--max-semi-space-size=2'])).toBe(true);
    expect(turnsConcurrentMarkingOff(1.5, [])).toBe(false);
    expect(turnsConcurrentMarkingOff(4, [])).toBe(false);
  });

  it("is left as Node's own options set it, when they do", () => {
    expect(turnsConcurrentMarkingOff(1, ['--concurrent-marking'])).toBe(false);
    expect(turnsConcurrentMarkingOff(1, ['--no-concurrent_marking'])).toBe(false);
  });
});
