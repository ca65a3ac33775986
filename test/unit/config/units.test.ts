import { describe, expect, it } from 'vitest';
import { parseDuration, parsePercent, parseRatio, parseSize } from '../../../src/config/units.ts';

describe('durations', () => {
  it.each([
    ['250ms', 250],
    ['2s', 2000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['1.5s', 1500],
    ['1.1s', 1100],
    ['0.25m', 15_000],
    [300, 300],
    [0, 0],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['2 s', '-1s', '1w', '1D', '1.5', 's', '1S', '1ms5'])('%s is refused', (text) => {
    expect(() => parseDuration(text)).toThrow(RangeError);
  });
});

describe('sizes', () => {
  it.each([
    ['512B', 512],
    ['16KiB', 16 * 1024],
    ['64KiB', 64 * 1024],
    ['1MiB', 1024 * 1024],
    ['1.5MiB', 1.5 * 1024 * 1024],
    ['10MB', 10_000_000],
    ['2KB', 2000],
    ['1GiB', 1024 ** 3],
    [4096, 4096],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['64kb', '64 KiB', '1TB', 'KiB', '-1B'])('%s is refused', (text) => {
    expect(() => parseSize(text)).toThrow(RangeError);
  });
});

describe('ratios and percentages', () => {
  it.each([
    [0.2, 0.2],
    ['20%', 0.2],
    ['100%', 1],
    ['0%', 0],
    ['12.5%', 0.125],
    [1, 1],
  ])('ratio %s is %d', (value, ratio) => {
    expect(parseRatio(value)).toBeCloseTo(ratio, 12);
  });

  it.each([
    [10, 10],
    ['10%', 10],
    ['0.5%', 0.5],
  ])('percentage %s is %d', (value, percent) => {
    expect(parsePercent(value)).toBe(percent);
  });

  it.each(['120%', '20', '%', '1e2%'])('%s is refused', (text) => {
    expect(() => parseRatio(text)).toThrow(RangeError);
  });
});
