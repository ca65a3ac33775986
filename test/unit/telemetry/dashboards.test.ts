// The shipped alert rules and Grafana dashboard must query only what Breakwater exports: a
// renamed metric or label would otherwise leave an alert that never fires and a panel that
// shows "No data", with nothing to say why. The exported families are read from the registry
// of a Breakwater built on a config that uses every policy, so a family added or renamed in
// the code is seen here without a list to keep in sync.

import { readFileSync } from 'node:fs';
import { Histogram } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Breakwater } from '../../../src/app.ts';
import { configFromYaml, ephemeralAddresses } from '../../support/breakwater.ts';
import { logSink } from '../../support/log-sink.ts';

const repo = new URL('../../../', import.meta.url);
const rulesFile = new URL('deploy/prometheus/breakwater-rules.yaml', repo);
const dashboardFile = new URL('deploy/grafana/breakwater-dashboard.json', repo);
const runbooksFile = new URL('docs/runbooks.md', repo);

/** Labels Prometheus itself puts on every scraped series; queries may filter and group by them. */
const targetLabels = ['job', 'instance', 'namespace', 'pod'];

const everyPolicy = `${ephemeralAddresses}
upstreams:
  payments:
    endpoints: [http://127.0.0.1:9]
    bulkhead: {maxConcurrent: 2, maxQueued: 2, queueTimeout: 50ms}
    circuitBreaker: {minRequests: 5}
  payments-dr:
    endpoints: [http://127.0.0.1:9]
routes:
  - name: charge
    match: {pathPrefix: /charge}
    upstream: payments
    timeout: 2s
    retry: {maxAttempts: 3, perTryTimeout: 500ms}
    fallback:
      on: [circuit-open, bulkhead-full, timeout, upstream-unavailable, 5xx]
      chain:
        - staleCache: {maxAge: 5m}
        - upstream: payments-dr
        - response: {status: 200, body: '{}'}
    fault: {delay: {percent: 1, duration: 10ms}, abort: {percent: 1, status: 503}}
  - name: report
    match: {pathPrefix: /report}
    upstream: payments
    circuitBreaker: {minRequests: 10}
  - name: refund
    match: {pathPrefix: /refund}
    upstream: payments
    idempotency: {store: shared, whileInProgress: wait}
    deadLetter: {store: shared}
stores:
  shared: {type: memory}
`;

/** Sample names (histograms give _bucket, _sum and _count) and the labels each carries. */
type Exported = Map<string, ReadonlySet<string>>;

async function exportedSamples(breakwater: Breakwater): Promise<{ samples: Exported; families: { name: string; help: string }[] }> {
  const samples = new Map<string, Set<string>>();
  const families: { name: string; help: string }[] = [];
  const registry = breakwater.metrics.registry;
  for (const family of await registry.getMetricsAsJSON()) {
    // prom-client keeps the declared label names on the metric; a family reports none if it has no series yet.
    const metric = registry.getSingleMetric(family.name);
    const declared = (metric as { labelNames?: readonly string[] } | undefined)?.labelNames;
    if (declared === undefined) throw new Error(`${family.name} does not say which labels it has`);
    families.push({ name: family.name, help: family.help });
    if (metric instanceof Histogram) {
      samples.set(`${family.name}_bucket`, new Set([...declared, 'le']));
      samples.set(`${family.name}_sum`, new Set(declared));
      samples.set(`${family.name}_count`, new Set(declared));
    } else {
      samples.set(family.name, new Set(declared));
    }
  }
  return { samples, families };
}

// PromQL words that are not metric names: aggregation operators, which may be followed by
// `by (...)` instead of `(`, and the keywords.
const aggregations = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile']);
const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
const groupings = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/** Strings, numbers and durations, names, Grafana variables, operators, and any other character. */
const tokenPattern = /\s+|#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|\d[\w.]*|[A-Za-z_:][\w:]*|\$\{?\w+\}?|=~|!=|!~|==|<=|>=|./gs;

interface Selector {
  readonly metric: string;
  /** Label names in the selector's braces. */
  readonly labels: readonly string[];
}

interface References {
  readonly selectors: readonly Selector[];
  /** Label names in by, without, on, ignoring, group_left and group_right lists. */
  readonly grouping: readonly string[];
}

/**
 * What one PromQL expression reads: each series selector with the label names it matches on,
 * and the labels it groups or joins by. Strings, durations and ranges are skipped; a name
 * followed by `(` is a function.
 */
function references(expr: string): References {
  const tokens = (expr.match(tokenPattern) ?? []).filter((token) => !/^\s|^#/.test(token));
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  /** The tokens up to the one that closes the bracket opened at `start`. */
  const closing = (start: number, open: string, close: string): number => {
    let depth = 0;
    for (let i = start; i < tokens.length; i++) {
      if (tokens[i] === open) depth++;
      if (tokens[i] === close && --depth === 0) return i;
    }
    throw new Error(`unbalanced ${open} in ${expr}`);
  };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const next = tokens[i + 1];
    if (token === '[') {
      i = closing(i, '[', ']');
    } else if (token === '{') {
      throw new Error(`a selector without a metric name in ${expr}`);
    } else if (groupings.has(token)) {
      if (next !== '(') continue;
      const end = closing(i + 1, '(', ')');
      grouping.push(...tokens.slice(i + 2, end).filter((name) => name !== ','));
      i = end;
    } else if (/^[A-Za-z_:]/.test(token) && next !== '(' && !aggregations.has(token) && !keywords.has(token)) {
      const labels: string[] = [];
      if (next === '{') {
        const end = closing(i + 1, '{', '}');
        // Inside braces: name, matcher, "value", and commas.
        for (let j = i + 2; j < end; j += 4) labels.push(tokens[j]!);
        i = end;
      }
      selectors.push({ metric: token, labels });
    }
  }
  return { selectors, grouping };
}

/** Every way `expr` refers to something Breakwater does not export, as one line each. */
function unknownReferences(expr: string, exported: Exported): string[] {
  const { selectors, grouping } = references(expr);
  const problems: string[] = [];
  if (selectors.length === 0) problems.push(`reads no metric: ${expr}`);
  const labelsInUse = new Set(targetLabels);
  for (const { metric, labels } of selectors) {
    const known = exported.get(metric);
    if (known === undefined) {
      problems.push(`unknown metric ${metric}`);
      continue;
    }
    for (const label of known) labelsInUse.add(label);
    for (const label of labels) {
      if (!known.has(label) && !targetLabels.includes(label)) problems.push(`${metric} has no label ${label}`);
    }
  }
  for (const label of grouping) {
    if (!labelsInUse.has(label)) problems.push(`no metric in the expression has the label ${label} it groups by`);
  }
  return problems;
}

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[];
}

const rules = parseYaml(readFileSync(rulesFile, 'utf8')) as RuleFile;
const alerts = rules.groups.flatMap((group) => group.rules.map((rule) => ({ group: group.name, ...rule })));

interface Panel {
  type: string;
  title: string;
  panels?: Panel[];
  targets?: { expr: string }[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as Dashboard;
const allPanels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
const panelQueries = allPanels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));
/** Grafana's `label_values(SELECTOR, LABEL)` variable queries. */
const variableQueries = dashboard.templating.list
  .filter((variable) => variable.type === 'query')
  .map((variable) => {
    const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
    const match = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
    if (match === null) throw new Error(`variable ${variable.name}: not a label_values() query: ${query}`);
    return { variable: variable.name, selector: match[1]!, label: match[2]! };
  });

describe('exported metric families', () => {
  let breakwater: Breakwater;
  let exported: Exported;
  let families: { name: string; help: string }[];

  beforeAll(async () => {
    breakwater = new Breakwater({ config: configFromYaml(everyPolicy), logger: logSink().logger });
    ({ samples: exported, families } = await exportedSamples(breakwater));
  });

  afterAll(() => breakwater.drain());

  it('each carry HELP text', () => {
    const breakwaterFamilies = families.filter((family) => family.name.startsWith('breakwater_'));
    expect(breakwaterFamilies.length).toBeGreaterThan(20);
    expect(breakwaterFamilies.filter((family) => family.help.trim().length < 20)).toEqual([]);
  });

  it('include the histogram of the deadline left when attempts start', () => {
    expect(exported.get('breakwater_upstream_attempt_deadline_remaining_seconds_bucket')).toEqual(new Set(['route', 'upstream', 'le']));
  });

  it('include the idempotency results and the store operations and errors', () => {
    expect(exported.get('breakwater_idempotency_requests_total')).toEqual(new Set(['route', 'result']));
    expect(exported.get('breakwater_store_operation_duration_seconds_bucket')).toEqual(new Set(['store', 'operation', 'le']));
    expect(exported.get('breakwater_store_errors_total')).toEqual(new Set(['store', 'operation']));
  });

  describe('the reference check itself', () => {
    it('finds the metrics, matchers and grouping labels of an expression', () => {
      expect(
        references(
          'histogram_quantile(0.99, sum by (route, le) (rate(x_bucket{route=~"$route", code!="5.."}[$__rate_interval] offset 5m))) > 0.8 * on (route) group_left () y',
        ),
      ).toEqual({
        selectors: [
          { metric: 'x_bucket', labels: ['route', 'code'] },
          { metric: 'y', labels: [] },
        ],
        grouping: ['route', 'le', 'route'],
      });
    });

    it('reports a misspelled metric, a label the metric lacks, and a grouping label nothing has', () => {
      const problems = unknownReferences(
        'sum by (rout) (rate(breakwater_request_total[5m])) / sum (rate(breakwater_requests_total{outcome="timeout"}[5m]))',
        exported,
      );
      expect(problems).toEqual([
        'unknown metric breakwater_request_total',
        'breakwater_requests_total has no label outcome',
        'no metric in the expression has the label rout it groups by',
      ]);
    });
  });

  describe('alert rules', () => {
    it.each(alerts.map((rule) => [rule.alert ?? rule.record, rule.expr]))('%s queries only exported metrics and labels', (_name, expr) => {
      expect(unknownReferences(expr, exported)).toEqual([]);
    });
  });

  describe('dashboard', () => {
    it.each(panelQueries.map((query) => [query.panel, query.expr]))('panel "%s" queries only exported metrics and labels', (_panel, expr) => {
      expect(unknownReferences(expr, exported)).toEqual([]);
    });

    it.each(variableQueries.map((query) => [query.variable, query.selector, query.label]))(
      'variable $%s lists values of a label its metric has',
      (_variable, selector, label) => {
        expect(unknownReferences(selector, exported)).toEqual([]);
        const [only] = references(selector).selectors;
        expect([...exported.get(only!.metric)!, ...targetLabels]).toContain(label);
      },
    );
  });
});

describe('alert rules file', () => {
  it('is a plain Prometheus rule file, one group per resilience pattern of the contract, and one for connection limits', () => {
    expect(Object.keys(rules)).toEqual(['groups']);
    expect(rules.groups.map((group) => group.name)).toEqual([
      'breakwater-timeouts',
      'breakwater-retries',
      'breakwater-circuit-breakers',
      'breakwater-bulkheads',
      'breakwater-fallbacks',
      'breakwater-deadlines',
      'breakwater-idempotency',
      'breakwater-dead-letters',
      'breakwater-stores',
      'breakwater-endpoints',
      'breakwater-hedging',
      'breakwater-config',
      'breakwater-connections',
    ]);
    for (const group of rules.groups) expect(group.rules.length, group.name).toBeGreaterThan(0);
  });

  it.each(alerts.map((rule) => [rule.alert, rule]))('%s has a severity, a summary, a description and a runbook section', (_name, rule) => {
    expect(rule.alert).toMatch(/^Breakwater[A-Z]\w+$/);
    expect(['warning', 'critical']).toContain(rule.labels?.severity);
    expect(rule.annotations?.summary).toBeTruthy();
    expect(rule.annotations?.description).toBeTruthy();
    // GitHub and most Markdown renderers make `## Name` into the anchor `#name`.
    const headings = [...readFileSync(runbooksFile, 'utf8').matchAll(/^## (\S+)$/gm)].map((match) => match[1]!.toLowerCase());
    expect(rule.annotations?.runbook_url).toBe(`docs/runbooks.md#${rule.alert!.toLowerCase()}`);
    expect(headings).toContain(rule.alert!.toLowerCase());
  });

  it('has a runbook section for every alert and none for alerts that do not exist', () => {
    const headings = [...readFileSync(runbooksFile, 'utf8').matchAll(/^## (\S+)$/gm)].map((match) => match[1]);
    expect(headings.sort()).toEqual(alerts.map((rule) => rule.alert).sort());
  });
});

describe('dashboard layout', () => {
  it('has a row per pattern, each with panels under it', () => {
    const rows = dashboard.panels.filter((panel) => panel.type === 'row').map((row) => row.title);
    for (const pattern of [/request/i, /retr/i, /breaker/i, /bulkhead/i, /fallback/i, /deadline/i, /idempotency/i, /endpoint/i, /dead letter/i, /hedg/i]) {
      expect(rows.some((title) => pattern.test(title)), String(pattern)).toBe(true);
    }
    // Panels follow their row in the list; a row directly followed by another row is empty.
    const types = dashboard.panels.map((panel) => panel.type);
    types.forEach((type, index) => {
      if (type === 'row') expect(types[index + 1], dashboard.panels[index]!.title).not.toBe('row');
    });
    expect(types.at(-1)).not.toBe('row');
  });

  it('shows request rate, errors and p99 per route, and the breaker state over time', () => {
    const byTitle = new Map(allPanels.map((panel) => [panel.title, panel]));
    expect(byTitle.get('Request rate by route')?.targets?.[0]?.expr).toMatch(/sum by \(route\) \(rate\(breakwater_requests_total/);
    expect(byTitle.get('Errors by route')?.targets?.[0]?.expr).toMatch(/code=~"5\.\."/);
    expect(byTitle.get('p99 latency by route')?.targets?.[0]?.expr).toMatch(/^histogram_quantile\(0\.99, sum by \(route, le\)/);
    expect(byTitle.get('Breaker state over time')?.type).toBe('state-timeline');
  });

  it('gives every panel an id of its own, so Grafana links and edits reach the right one', () => {
    const ids = dashboard.panels.map((panel) => (panel as { id?: number }).id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('shows which endpoints outlier detection has ejected over time, and why they were', () => {
    const byTitle = new Map(allPanels.map((panel) => [panel.title, panel]));
    expect(byTitle.get('Ejected endpoints over time')?.type).toBe('state-timeline');
    expect(byTitle.get('Ejected endpoints over time')?.targets?.[0]?.expr).toMatch(/breakwater_endpoint_ejected\{/);
    expect(byTitle.get('Ejections by upstream and reason')?.targets?.[0]?.expr).toMatch(/^sum by \(upstream, reason\) \(rate\(breakwater_outlier_ejections_total/);
  });

  it('shows hedges by result, hedges per request and the ones that won, and the adaptive per-try timeout under the hedging row', () => {
    const rowIndex = dashboard.panels.findIndex((panel) => panel.type === 'row' && /hedg/i.test(panel.title));
    const nextRow = dashboard.panels.findIndex((panel, index) => index > rowIndex && panel.type === 'row');
    const row = dashboard.panels.slice(rowIndex + 1, nextRow === -1 ? undefined : nextRow);
    const exprsOf = (title: string): string[] => (row.find((panel) => panel.title === title)?.targets ?? []).map((target) => target.expr);
    expect(exprsOf('Hedges by route and result')).toEqual([expect.stringMatching(/^sum by \(route, result\) \(rate\(breakwater_hedges_total\{/)]);
    // Hedges over the route's requests, then the won share of the hedges sent.
    expect(exprsOf('Hedges per request, and hedges that won')).toEqual([
      expect.stringMatching(/result="sent".*\/ sum by \(route\) \(rate\(breakwater_requests_total\{/),
      expect.stringMatching(/result="won".*\/ .*result="sent"/),
    ]);
    expect(exprsOf('Adaptive per-try timeout')).toEqual([expect.stringMatching(/^max by \(route, instance\) \(breakwater_adaptive_timeout_seconds\{/)]);
  });

  it('shows keyed requests by result, the refused share, and store latency and errors under the idempotency row', () => {
    const rowIndex = dashboard.panels.findIndex((panel) => panel.type === 'row' && /idempotency/i.test(panel.title));
    const nextRow = dashboard.panels.findIndex((panel, index) => index > rowIndex && panel.type === 'row');
    const row = dashboard.panels.slice(rowIndex + 1, nextRow === -1 ? undefined : nextRow);
    const exprOf = (title: string): string | undefined => row.find((panel) => panel.title === title)?.targets?.[0]?.expr;
    expect(exprOf('Keyed requests by result')).toMatch(/^sum by \(route, result\) \(rate\(breakwater_idempotency_requests_total\{/);
    // The share's denominator is the keyed requests alone: no key means nothing to de-duplicate.
    expect(exprOf('Keyed requests refused or not de-duplicated')).toMatch(/result=~"conflict\|mismatch\|store_error".*result!~"bypassed\|missing"/);
    expect(exprOf('p99 store operation latency')).toMatch(/^histogram_quantile\(0\.99, sum by \(store, operation, le\) \(rate\(breakwater_store_operation_duration_seconds_bucket/);
    expect(exprOf('Store errors by operation')).toMatch(/^sum by \(store, operation\) \(rate\(breakwater_store_errors_total/);
  });
});
