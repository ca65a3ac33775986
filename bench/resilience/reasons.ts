// Why a peer can do better than Breakwater on a figure: the mechanism behind it, by scenario
// (or `any`), figure and system. The report prints the one that matches each figure a peer
// wins, beside the two measured values.
import type { Figure } from './report.ts';
import type { ScenarioName } from './scenarios.ts';
import type { SystemName } from './systems.ts';

type Reasons = Partial<Record<Figure, Partial<Record<Exclude<SystemName, 'breakwater'>, string>>>>;

const cheaperPath =
  'Its request path is compiled C, event-driven, with no per-request policy bookkeeping; Breakwater runs every request ' +
  'through its policy layers in Node.js, which costs a few hundred microseconds more per request (see `npm run bench`).';

export const betterReasons: Partial<Record<ScenarioName | 'any', Reasons>> = {
  any: {
    p50: { direct: 'With no proxy there is no hop to pay for.', nginx: cheaperPath, haproxy: cheaperPath },
    amplification: { direct: 'With no proxy nothing retries, so the upstream sees each request once; the success rate shows the price.' },
  },
};
