// prom-client's classes, each from its own module: the package's entry point also loads its
// Pushgateway client, and with it node:https and Node's TLS code, which would stay resident in
// a sidecar that only serves /metrics (docs/decisions/0014-memory-budget.md).

import Counter from 'prom-client/lib/counter.js';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';

export { collectDefaultMetrics, Counter, Gauge, Histogram, Registry };
