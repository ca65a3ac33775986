// The charts of scenarios over time (the outage, the latency shift): p50 latency, p99 latency
// and success rate, one line per system,
// three panels sharing the time axis, as a self-contained SVG.
import type { Bin } from './analyse.ts';
import { chartBinMs } from './analyse.ts';
import type { RunResult } from './report.ts';
import type { Scenario, Span } from './scenarios.ts';
import type { SystemName } from './systems.ts';
import { fixedPerTry } from './systems.ts';

const style: Readonly<Record<SystemName, { label: string; colour: string; width: number; dash?: string }>> = {
  direct: { label: 'no proxy', colour: '#7f7f7f', width: 2, dash: '6 4' },
  nginx: { label: 'nginx', colour: '#2ca02c', width: 2 },
  haproxy: { label: 'HAProxy', colour: '#1f77b4', width: 2 },
  breakwater: { label: 'Breakwater', colour: '#d62728', width: 2.5 },
  'breakwater-no-hedge': { label: 'Breakwater, no hedging', colour: '#ff7f0e', width: 2 },
  'breakwater-fixed-tight': { label: `Breakwater, fixed ${fixedPerTry.tightMs} ms`, colour: '#9467bd', width: 2 },
  'breakwater-fixed-loose': { label: `Breakwater, fixed ${fixedPerTry.looseMs / 1000} s`, colour: '#8c564b', width: 2 },
};

const width = 960;
const left = 72;
const right = 24;
const panelHeight = 170;
const panelGap = 46;
const top = 84;
const plotWidth = width - left - right;

interface Panel {
  readonly title: string;
  readonly value: (bin: Bin) => number;
  /** Maps a value to 0 (bottom) .. 1 (top). */
  readonly scale: (value: number) => number;
  readonly ticks: readonly { value: number; label: string }[];
}

const logRange = { min: 0.1, max: 10_000 };
const logScale = (value: number): number => {
  const clamped = Math.min(Math.max(value, logRange.min), logRange.max);
  return (Math.log10(clamped) - Math.log10(logRange.min)) / (Math.log10(logRange.max) - Math.log10(logRange.min));
};
const logTicks = [0.1, 1, 10, 100, 1000, 10_000].map((value) => ({ value, label: value >= 1000 ? `${value / 1000} s` : `${value} ms` }));

const panels: readonly Panel[] = [
  { title: 'p50 latency (log scale)', value: (bin) => bin.p50, scale: logScale, ticks: logTicks },
  { title: 'p99 latency (log scale)', value: (bin) => bin.p99, scale: logScale, ticks: logTicks },
  {
    title: 'success rate',
    value: (bin) => bin.success * 100,
    scale: (value) => Math.min(Math.max(value, 0), 100) / 100,
    ticks: [0, 25, 50, 75, 100].map((value) => ({ value, label: `${value}%` })),
  },
];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const fixed = (n: number): string => n.toFixed(1);

export function outageChart(scenario: Scenario, results: readonly RunResult[]): string {
  const outage = scenario.outage;
  if (outage === undefined) throw new Error(`${scenario.name} has no outage to chart`);
  return timeChart(scenario, results, outage, 'outage');
}

/** The chart of `scenario` over time, with `band` shaded and named in the corner by `bandLabel`. */
export function timeChart(scenario: Scenario, results: readonly RunResult[], band: Span, bandLabel: string): string {
  const durationS = scenario.durationMs / 1000;
  const x = (seconds: number): number => left + (seconds / durationS) * plotWidth;
  const height = top + panels.length * (panelHeight + panelGap) + 10;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">${escape(`${scenario.title[0]?.toUpperCase()}${scenario.title.slice(1)}`)}</text>`,
  );
  // legend
  let legendX = left;
  for (const result of results) {
    const s = style[result.system];
    out.push(
      `<line x1="${legendX}" y1="46" x2="${legendX + 28}" y2="46" stroke="${s.colour}" stroke-width="${s.width + 1}"${s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`}/>`,
      `<text x="${legendX + 34}" y="50">${escape(s.label)}</text>`,
    );
    legendX += 48 + s.label.length * 8;
  }
  out.push(`<text x="${width - right}" y="24" text-anchor="end" fill="#555">shaded: ${escape(bandLabel)} · ${chartBinMs / 1000} s bins by due time</text>`);

  panels.forEach((panel, index) => {
    const panelTop = top + index * (panelHeight + panelGap);
    const y = (value: number): number => panelTop + panelHeight - panel.scale(value) * panelHeight;
    out.push(`<text x="${left}" y="${panelTop - 8}" font-weight="bold">${escape(panel.title)}</text>`);
    out.push(`<rect x="${fixed(x(band.fromMs / 1000))}" y="${panelTop}" width="${fixed(x(band.toMs / 1000) - x(band.fromMs / 1000))}" height="${panelHeight}" fill="#f2dede"/>`);
    for (const tick of panel.ticks) {
      const ty = fixed(y(tick.value));
      out.push(
        `<line x1="${left}" y1="${ty}" x2="${width - right}" y2="${ty}" stroke="#e4e4e4"/>`,
        `<text x="${left - 6}" y="${fixed(y(tick.value) + 4)}" text-anchor="end" fill="#444">${escape(tick.label)}</text>`,
      );
    }
    for (let s = 0; s <= durationS; s += 5) {
      out.push(`<line x1="${fixed(x(s))}" y1="${panelTop + panelHeight}" x2="${fixed(x(s))}" y2="${panelTop + panelHeight + 4}" stroke="#444"/>`);
      out.push(`<text x="${fixed(x(s))}" y="${panelTop + panelHeight + 17}" text-anchor="middle" fill="#444">${s} s</text>`);
    }
    out.push(`<rect x="${left}" y="${panelTop}" width="${plotWidth}" height="${panelHeight}" fill="none" stroke="#999"/>`);
    for (const result of results) {
      const s = style[result.system];
      const points = result.figures.series
        .filter((bin) => bin.requests > 0 && Number.isFinite(panel.value(bin)))
        .map((bin) => `${fixed(x(bin.t + chartBinMs / 2000))},${fixed(y(panel.value(bin)))}`);
      if (points.length === 0) continue;
      out.push(
        `<polyline points="${points.join(' ')}" fill="none" stroke="${s.colour}" stroke-width="${s.width}" stroke-linejoin="round"${s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`}/>`,
      );
    }
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
