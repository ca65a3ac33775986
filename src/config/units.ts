// The human spellings the config file accepts for durations, sizes, ratios and percentages,
// and their conversion to the numbers of the effective config. The patterns are shared with
// schema.ts so that editors and `breakwater validate` accept exactly the same strings.

export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$';
export const SIZE_PATTERN = '^[0-9]+(\\.[0-9]+)?(B|KB|KiB|MB|MiB|GB|GiB)$';
// 0% to 100%, decimals allowed; the upper bound is part of the pattern so editors flag "120%".
export const PERCENT_PATTERN = '^(100(\\.0+)?|[0-9]{1,2}(\\.[0-9]+)?)%$';

const MS_PER_UNIT: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const BYTES_PER_UNIT: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1000,
  KiB: 1024,
  MB: 1000 ** 2,
  MiB: 1024 ** 2,
  GB: 1000 ** 3,
  GiB: 1024 ** 3,
};

const DURATION_RE = new RegExp(DURATION_PATTERN);
const SIZE_RE = new RegExp(SIZE_PATTERN);
const PERCENT_RE = new RegExp(PERCENT_PATTERN);

/** `250ms`, `1.5s`, `1m`, `1h`, `7d`, or an integer number of milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value;
  const match = DURATION_RE.exec(value);
  if (!match) throw new RangeError(`not a duration: ${JSON.stringify(value)}`);
  const amount = Number.parseFloat(value);
  const unit = MS_PER_UNIT[match[2] ?? ''] ?? 1;
  // Round to microseconds so that `1.1s` is 1100, not 1100.0000000000002.
  return Math.round(amount * unit * 1000) / 1000;
}

/** Integer bytes, or `512B`, `16KiB`, `1.5MiB`, `10MB` (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024). */
export function parseSize(value: string | number): number {
  if (typeof value === 'number') return value;
  const match = SIZE_RE.exec(value);
  if (!match) throw new RangeError(`not a size: ${JSON.stringify(value)}`);
  const amount = Number.parseFloat(value);
  const unit = BYTES_PER_UNIT[match[2] ?? ''] ?? 1;
  return Math.round(amount * unit);
}

/** A number in 0..1, or a percent string such as `"20%"`; returns 0..1. */
export function parseRatio(value: string | number): number {
  if (typeof value === 'number') return value;
  return parsePercentString(value) / 100;
}

/** A number in 0..100, or a percent string such as `"10%"`; returns 0..100. */
export function parsePercent(value: string | number): number {
  if (typeof value === 'number') return value;
  return parsePercentString(value);
}

function parsePercentString(value: string): number {
  if (!PERCENT_RE.test(value)) throw new RangeError(`not a percentage: ${JSON.stringify(value)}`);
  return Number.parseFloat(value);
}

/** Writes milliseconds back in the shortest exact unit, for messages and the docs. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Writes bytes back in the largest binary unit that divides them exactly, for messages and tools. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
