// The admin page: reads Breakwater's admin API every few seconds and draws what it says. Its
// buttons send the same requests as any other client of the API (a POST with a JSON body from
// this page's own origin), so the page can do nothing that curl on the admin port cannot.
// Plain DOM and no library: the page needs no network beyond the admin port and no build step.

// Every two seconds, unless the address asks otherwise: /?refresh=10 for every ten seconds.
const asked = Number(new URLSearchParams(location.search).get('refresh'));
const refreshMs = Number.isFinite(asked) && asked >= 0.1 ? asked * 1000 : 2000;

/** An element with attributes and children; children are nodes or text, never markup, so no config value can inject HTML. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Milliseconds in the shortest exact unit, as the config file writes durations. */
function duration(ms) {
  if (typeof ms !== 'number') return '';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]]) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function percent(ratio) {
  return typeof ratio === 'number' ? `${Math.round(ratio * 1000) / 10}%` : '';
}

function time(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso ?? '') : date.toLocaleString();
}

async function getJson(path) {
  try {
    const response = await fetch(path, { cache: 'no-store', headers: { accept: 'application/json' } });
    if (!response.ok) return { ok: false, status: response.status };
    return { ok: true, body: await response.json() };
  } catch (error) {
    return { ok: false, status: 0, error };
  }
}

/** A state-changing request as the admin API takes it: JSON, from this page's own origin. */
async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let answer;
  try {
    answer = await response.json();
  } catch {
    answer = undefined;
  }
  if (!response.ok) throw new Error(answer?.error?.message ?? `${response.status} ${response.statusText}`);
  return answer;
}

function say(text, failed = false) {
  const message = document.getElementById('message');
  message.textContent = text;
  message.classList.toggle('failed', failed);
}

function content(id) {
  return document.querySelector(`#${id} .content`);
}

/**
 * A table whose rows are kept by key across refreshes: a refresh rewrites only the text that
 * changed, so a button is never replaced under the operator's pointer.
 */
class KeyedTable {
  constructor(container, headings, emptyText) {
    this.body = h('tbody');
    this.table = h('table', {}, h('thead', {}, h('tr', {}, headings.map((heading) => h('th', { scope: 'col' }, heading)))), this.body);
    this.empty = h('p', { class: 'empty' }, emptyText);
    this.rows = new Map();
    container.replaceChildren(this.table, this.empty);
  }

  /** `fill(row, item, created)` writes a row's cells; rows follow the order of `items`. */
  update(items, keyOf, fill) {
    const seen = new Set();
    items.forEach((item, index) => {
      const key = String(keyOf(item));
      seen.add(key);
      let row = this.rows.get(key);
      const created = row === undefined;
      if (created) {
        row = h('tr', { 'data-key': key });
        this.rows.set(key, row);
      }
      fill(row, item, created);
      if (this.body.children[index] !== row) this.body.insertBefore(row, this.body.children[index] ?? null);
    });
    for (const [key, row] of this.rows) {
      if (!seen.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    this.table.hidden = items.length === 0;
    this.empty.hidden = items.length !== 0;
  }
}

/** Writes text cells from the left, touching only those that changed; a cell is text or {text, class}. */
function setCells(row, cells) {
  cells.forEach((cell, index) => {
    const spec = typeof cell === 'object' && cell !== null ? cell : { text: cell };
    let td = row.children[index];
    if (td === undefined) {
      td = h('td');
      row.append(td);
    }
    const text = String(spec.text ?? '');
    if (td.textContent !== text) td.textContent = text;
    const className = spec.class ?? '';
    if (td.className !== className) td.className = className;
  });
}

/** A cell of the row at `index` that the caller fills once, e.g. with buttons. */
function fixedCell(row, index, build) {
  while (row.children.length < index) row.append(h('td'));
  if (row.children[index] === undefined) row.append(h('td', { class: 'actions' }, build()));
  return row.children[index];
}

// --- Circuit breakers --------------------------------------------------------------------

const modes = [
  ['forced-open', 'Force open'],
  ['disabled', 'Disable'],
  ['auto', 'Auto'],
];

let circuitsTable;

async function setCircuit(name, mode, cell) {
  const buttons = [...cell.querySelectorAll('button')];
  for (const button of buttons) button.disabled = true;
  try {
    const row = await post(`/circuits/${encodeURIComponent(name)}`, { state: mode });
    say(`Breaker ${name} is now ${row?.state ?? mode} (mode ${row?.mode ?? mode}).`);
  } catch (error) {
    say(`Could not set breaker ${name} to ${mode}: ${error.message}`, true);
  } finally {
    for (const button of buttons) button.disabled = false;
    await refresh();
  }
}

function renderCircuits(rows) {
  circuitsTable ??= new KeyedTable(
    content('circuits'),
    ['Breaker', 'Upstream', 'State', 'Mode', 'Calls', 'Failures', 'Slow', 'Next probe', 'Set mode'],
    'No circuit breakers: no upstream or route in the config has circuitBreaker.',
  );
  circuitsTable.update(Array.isArray(rows) ? rows : [], (row) => row.name, (tr, circuit) => {
    setCells(tr, [
      { text: circuit.name, class: 'name' },
      circuit.upstream,
      { text: circuit.state, class: `state state-${circuit.state}` },
      circuit.mode,
      circuit.calls,
      percent(circuit.failureRate),
      percent(circuit.slowRate),
      circuit.retryInMs === null || circuit.retryInMs === undefined
        ? circuit.probes
          ? `${circuit.probes.succeeded}/${circuit.probes.required} probes passed`
          : ''
        : `in ${duration(circuit.retryInMs)}`,
    ]);
    const cell = fixedCell(tr, 8, () =>
      modes.map(([mode, label]) =>
        h('button', { type: 'button', 'data-mode': mode, onclick: (event) => setCircuit(circuit.name, mode, event.currentTarget.parentElement) }, label),
      ),
    );
    for (const button of cell.querySelectorAll('button')) {
      const pressed = String(button.dataset.mode === circuit.mode);
      if (button.getAttribute('aria-pressed') !== pressed) button.setAttribute('aria-pressed', pressed);
    }
  });
}

// --- Bulkheads ---------------------------------------------------------------------------

let bulkheadsTable;

function renderBulkheads(rows) {
  bulkheadsTable ??= new KeyedTable(content('bulkheads'), ['Upstream', 'In flight', 'Queued'], 'No bulkheads: no upstream in the config has bulkhead.');
  bulkheadsTable.update(Array.isArray(rows) ? rows : [], (row) => row.upstream, (tr, bulkhead) => {
    setCells(tr, [{ text: bulkhead.upstream, class: 'name' }, '', '']);
    occupancy(tr.children[1], bulkhead.inFlight, bulkhead.maxConcurrent);
    occupancy(tr.children[2], bulkhead.queued, bulkhead.maxQueued);
  });
}

/** `n / max` with a bar, drawn in place. */
function occupancy(cell, value, max) {
  let meter = cell.querySelector('meter');
  let label = cell.querySelector('span');
  if (meter === null) {
    cell.textContent = '';
    meter = h('meter', { min: 0 });
    label = h('span');
    cell.append(meter, label);
  }
  meter.max = Math.max(1, max);
  meter.value = value;
  meter.high = Math.max(1, max) * 0.8;
  label.textContent = `${value} / ${max}`;
  cell.classList.toggle('full', max > 0 && value >= max);
}

// --- Dead letters ------------------------------------------------------------------------

let deadLettersTable;

function deadLetterEntries(body) {
  if (Array.isArray(body)) return body;
  for (const key of ['entries', 'items', 'deadLetters']) if (Array.isArray(body?.[key])) return body[key];
  return [];
}

async function replay(id, button) {
  button.disabled = true;
  try {
    const answer = await post(`/dead-letters/${encodeURIComponent(id)}/replay`);
    const result = answer?.result ?? answer?.status ?? 'sent';
    say(`Dead letter ${id} replayed: ${typeof result === 'string' ? result : JSON.stringify(result)}.`);
  } catch (error) {
    say(`Could not replay dead letter ${id}: ${error.message}`, true);
  } finally {
    button.disabled = false;
    await refresh();
  }
}

function renderDeadLetters(answer) {
  const section = document.getElementById('dead-letters');
  // Shown only where the running Breakwater has the dead-letter API.
  section.hidden = !answer.ok;
  if (!answer.ok) return;
  deadLettersTable ??= new KeyedTable(content('dead-letters'), ['Time', 'Route', 'Request', 'Outcome', 'Attempts', 'Replays', 'Id', ''], 'No dead letters.');
  deadLettersTable.update(deadLetterEntries(answer.body), (entry) => entry.id, (tr, entry) => {
    setCells(tr, [
      time(entry.time),
      { text: entry.route, class: 'name' },
      `${entry.method ?? ''} ${entry.url ?? ''}`.trim(),
      entry.reason ?? entry.status ?? '',
      entry.attempts ?? '',
      entry.replayCount ? `${entry.replayCount}${entry.lastReplay?.result ? `, last ${entry.lastReplay.result}` : ''}` : '',
      { text: entry.id, class: 'id' },
    ]);
    fixedCell(tr, 7, () => h('button', { type: 'button', onclick: (event) => replay(entry.id, event.currentTarget) }, 'Replay'));
  });
}

// --- Routes and upstreams (from the effective config) -----------------------------------

// Every route has its WebSocket bounds, defaults filled in: as a policy named under "Also" they
// would only repeat on every row. GET /config and `breakwater explain` show them.
const knownRouteKeys = new Set(['name', 'listener', 'match', 'upstream', 'timeoutMs', 'retry', 'circuitBreaker', 'fallback', 'fault', 'websocket']);

function matchText(match = {}) {
  const parts = [];
  if (match.host !== undefined) parts.push(`host ${match.host}`);
  if (match.path !== undefined) parts.push(`path ${match.path}`);
  if (match.pathPrefix !== undefined) parts.push(`prefix ${match.pathPrefix}`);
  if (match.methods !== undefined) parts.push(match.methods.join('|'));
  for (const [name, value] of Object.entries(match.headers ?? {})) parts.push(`${name}: ${value}`);
  return parts.length === 0 ? 'every request' : parts.join(', ');
}

function retryText(retry) {
  if (retry === undefined) return '—';
  const adaptive = retry.adaptivePerTryTimeout;
  const each =
    retry.perTryTimeoutMs !== undefined
      ? `, ${duration(retry.perTryTimeoutMs)} each`
      : adaptive !== undefined
        ? `, ${adaptive.multiplier} × p${adaptive.percentile} ≤ ${duration(adaptive.maxMs)} each`
        : '';
  return `${retry.maxAttempts} attempts${each}, on ${retry.retryOn.join(', ')}`;
}

function fallbackText(fallback) {
  if (fallback === undefined) return '—';
  const steps = fallback.chain.map((step) =>
    step.kind === 'staleCache' ? `stale ≤ ${duration(step.maxAgeMs)}` : step.kind === 'upstream' ? `upstream ${step.upstream}` : `static ${step.status}`,
  );
  return `on ${fallback.on.join(', ')}: ${steps.join(' → ')}`;
}

function faultText(fault) {
  if (fault === undefined) return '—';
  const parts = [];
  if (fault.delay) parts.push(`delay ${fault.delay.percent}% by ${duration(fault.delay.durationMs)}`);
  if (fault.abort) parts.push(`abort ${fault.abort.percent}% with ${fault.abort.status}`);
  return parts.join(', ') || '—';
}

function breakerText(route, upstreams) {
  if (route.circuitBreaker !== undefined) return `own (route:${route.name})`;
  return upstreams?.[route.upstream]?.circuitBreaker !== undefined ? `upstream ${route.upstream}` : '—';
}

function renderRoutes(config) {
  const routes = Array.isArray(config?.routes) ? config.routes : [];
  const anyOther = routes.some((route) => Object.keys(route).some((key) => !knownRouteKeys.has(key)));
  const rows = routes.map((route) => {
    const other = Object.keys(route).filter((key) => !knownRouteKeys.has(key));
    return h(
      'tr',
      { 'data-key': route.name },
      h('td', { class: 'name' }, route.name),
      h('td', {}, route.listener),
      h('td', {}, matchText(route.match)),
      h('td', {}, route.upstream),
      h('td', {}, duration(route.timeoutMs)),
      h('td', {}, retryText(route.retry)),
      h('td', {}, breakerText(route, config.upstreams)),
      h('td', {}, fallbackText(route.fallback)),
      h('td', {}, faultText(route.fault)),
      // Policies this page has no column for, by name.
      ...(anyOther ? [h('td', {}, other.join(', ') || '—')] : []),
    );
  });
  const headings = ['Route', 'Listener', 'Match', 'Upstream', 'Timeout', 'Retry', 'Breaker', 'Fallback', 'Fault', ...(anyOther ? ['Also'] : [])];
  content('routes').replaceChildren(
    rows.length === 0
      ? h('p', { class: 'empty' }, 'No routes: every request gets 404 no_route.')
      : h('table', {}, h('thead', {}, h('tr', {}, headings.map((heading) => h('th', { scope: 'col' }, heading)))), h('tbody', {}, rows)),
  );
}

/** GET /endpoints as upstream → endpoints with their state; null when the server has no such endpoint. */
function endpointStates(answer) {
  if (!answer.ok) return null;
  const body = answer.body;
  const states = new Map();
  const add = (upstream, entry) => {
    const endpoint = typeof entry === 'string' ? { url: entry } : entry ?? {};
    const list = states.get(upstream) ?? [];
    list.push({
      url: endpoint.endpoint ?? endpoint.url ?? endpoint.address ?? endpoint.origin ?? endpoint.name ?? '',
      state: endpoint.state ?? (endpoint.ejected ? 'ejected' : 'active'),
      reason: endpoint.reason ?? endpoint.ejection?.reason,
      until: endpoint.ejectedUntil ?? endpoint.until ?? endpoint.ejection?.until,
      inFlight: endpoint.inFlight,
      latencyMs: endpoint.latencyEwmaMs,
    });
    states.set(upstream, list);
  };
  const rows = Array.isArray(body) ? body : Array.isArray(body?.endpoints) ? body.endpoints : null;
  if (rows !== null) {
    for (const row of rows) {
      if (Array.isArray(row?.endpoints)) for (const endpoint of row.endpoints) add(row.upstream ?? row.name, endpoint);
      else add(row?.upstream, row);
    }
  } else if (body !== null && typeof body === 'object') {
    const byName = body.upstreams !== null && typeof body.upstreams === 'object' ? body.upstreams : body;
    for (const [upstream, value] of Object.entries(byName)) {
      for (const endpoint of Array.isArray(value) ? value : Array.isArray(value?.endpoints) ? value.endpoints : []) add(upstream, endpoint);
    }
  }
  return states;
}

function endpointList(configured, live) {
  const endpoints = live ?? configured.map((url) => ({ url, state: 'configured' }));
  return h(
    'ul',
    { class: 'endpoints' },
    endpoints.map((endpoint) => {
      const ejected = endpoint.state === 'ejected';
      const detail = ejected ? [endpoint.reason, endpoint.until === undefined ? undefined : `until ${time(endpoint.until)}`].filter(Boolean).join(', ') : '';
      return h(
        'li',
        { class: ejected ? 'ejected' : '' },
        h('span', { class: 'url' }, endpoint.url),
        ' ',
        h('span', { class: `badge badge-${endpoint.state}` }, endpoint.state),
        detail === '' ? '' : ` ${detail}`,
        typeof endpoint.inFlight === 'number' ? ` · ${endpoint.inFlight} in flight` : '',
        typeof endpoint.latencyMs === 'number' && endpoint.latencyMs > 0 ? ` · ${Math.round(endpoint.latencyMs * 10) / 10}ms` : '',
      );
    }),
  );
}

function renderUpstreams(config, states) {
  const upstreams = Object.entries(config?.upstreams ?? {});
  const headings = ['Upstream', states === null ? 'Endpoints (as configured)' : 'Endpoints', 'Balancing', 'Connect timeout', 'Bulkhead', 'Breaker'];
  const rows = upstreams.map(([name, upstream]) => {
    const bulkhead = upstream.bulkhead;
    const breaker = upstream.circuitBreaker;
    return h(
      'tr',
      { 'data-key': name },
      h('td', { class: 'name' }, name),
      h('td', {}, endpointList(upstream.endpoints ?? [], states?.get(name))),
      h('td', {}, upstream.loadBalancing ?? ''),
      h('td', {}, duration(upstream.connectTimeoutMs)),
      h('td', {}, bulkhead === undefined ? '—' : `${bulkhead.maxConcurrent} at once, ${bulkhead.maxQueued} queued ≤ ${duration(bulkhead.queueTimeoutMs)}`),
      h('td', {}, breaker === undefined ? '—' : `opens at ${percent(breaker.failureRate)} failed of ≥ ${breaker.minRequests} in ${duration(breaker.windowMs)}, for ${duration(breaker.openForMs)}`),
    );
  });
  content('upstreams').replaceChildren(
    rows.length === 0
      ? h('p', { class: 'empty' }, 'No upstreams.')
      : h('table', {}, h('thead', {}, h('tr', {}, headings.map((heading) => h('th', { scope: 'col' }, heading)))), h('tbody', {}, rows)),
  );
}

// --- Reloads -----------------------------------------------------------------------------

let reloadsTable;

function renderReloads(rows) {
  reloadsTable ??= new KeyedTable(content('reloads'), ['Time', 'Result', 'Detail'], 'No reload since Breakwater started.');
  const entries = Array.isArray(rows) ? rows : [];
  // Entries carry no id; newest first, so an entry's place counted from the oldest is stable.
  reloadsTable.update(entries, (entry) => `${entry.time} ${entries.length - entries.indexOf(entry)}`, (tr, entry) => {
    setCells(tr, [
      time(entry.time),
      { text: entry.result, class: `result result-${entry.result}` },
      entry.problems?.join('\n') ?? (entry.hash === undefined ? '' : `config ${String(entry.hash).slice(0, 12)}`),
    ]);
  });
}

// --- Refreshing --------------------------------------------------------------------------

/**
 * The APIs a Breakwater may not have (endpoint discovery, dead letters) are asked for until one
 * answers 404: that server does not have it, and the page stops asking until it is reloaded.
 */
const absent = new Set();

async function optional(path) {
  if (absent.has(path)) return { ok: false, status: 404 };
  const answer = await getJson(path);
  if (answer.status === 404) absent.add(path);
  return answer;
}

/** What each section last drew from, so that unchanged tables are not rebuilt. */
const drawn = { config: '', endpoints: '' };
let started = 0;
let shown = 0;
let timer;

async function refresh() {
  clearTimeout(timer);
  const generation = ++started;
  try {
    if (document.hidden) return;
    const [config, circuits, bulkheads, endpoints, deadLetters, reloads] = await Promise.all([
      getJson('/config'),
      getJson('/circuits'),
      getJson('/bulkheads'),
      optional('/endpoints'),
      optional('/dead-letters?limit=50'),
      getJson('/reloads'),
    ]);
    // A refresh that finished after a later one has nothing newer to show.
    if (generation < shown) return;
    shown = generation;
    if (!config.ok) {
      document.getElementById('status').textContent = `Cannot reach the admin API (${config.status === 0 ? 'no answer' : config.status}); trying again every ${refreshMs / 1000} s.`;
      document.body.classList.add('stale');
      return;
    }
    document.body.classList.remove('stale');
    renderCircuits(circuits.body);
    renderBulkheads(bulkheads.body);
    renderDeadLetters(deadLetters);
    const configText = JSON.stringify(config.body);
    const states = endpointStates(endpoints);
    const endpointsText = JSON.stringify(states === null ? null : [...states]);
    if (configText !== drawn.config) renderRoutes(config.body);
    if (configText !== drawn.config || endpointsText !== drawn.endpoints) renderUpstreams(config.body, states);
    drawn.config = configText;
    drawn.endpoints = endpointsText;
    renderReloads(reloads.body);
    document.getElementById('status').textContent = `Updated ${new Date().toLocaleTimeString()}, every ${refreshMs / 1000} s.`;
  } finally {
    if (generation === started) timer = setTimeout(refresh, refreshMs);
  }
}

document.getElementById('where').textContent = `admin on ${location.host}`;
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) void refresh();
});
void refresh();
