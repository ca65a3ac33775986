// The proxies' files of the resilience benchmark, as the benchmark renders them: what a reader
// of docs/resilience.md is told each system runs with must be what it runs with.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';
import { renderTemplate } from '../../../bench/lib/template.ts';
import { configFiles, fixedPerTry, repeatReplicaLines, variantConfig, variantNames } from '../../../bench/resilience/systems.ts';
import { repoRoot } from '../../../bench/targets.ts';

const three = [
  { name: 'orders-a', port: 41001 },
  { name: 'orders-b', port: 41002 },
  { name: 'orders-c', port: 41003 },
];
const ports = { PORT: 40000, TELEMETRY_PORT: 40001, ADMIN_PORT: 40002, CATALOG_A: 41009, WORK: '/tmp/work' };

function rendered(file: string, replicas = three): string {
  return renderTemplate(repeatReplicaLines(readFileSync(path.join(repoRoot, file), 'utf8'), replicas), ports);
}

function breakwater(text: string): Config {
  const result = parseConfig(text, 'breakwater.yaml');
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.config;
}

describe('the resilience benchmark files', () => {
  it('give every proxy one server line per orders replica of the scenario', () => {
    expect(breakwater(rendered(configFiles.breakwater)).upstreams.get('orders')?.endpoints).toEqual([
      'http://127.0.0.1:41001',
      'http://127.0.0.1:41002',
      'http://127.0.0.1:41003',
    ]);
    expect(breakwater(rendered(configFiles.breakwater, three.slice(0, 2))).upstreams.get('orders')?.endpoints).toHaveLength(2);
    expect(rendered(configFiles.nginx).match(/server 127\.0\.0\.1:4100\d max_fails=5 fail_timeout=3s max_conns=16;/g)).toHaveLength(3);
    expect(rendered(configFiles.haproxy)).toContain('server orders-c 127.0.0.1:41003');
  });

  it("configure Breakwater's orders with the tail-latency policies", () => {
    const config = breakwater(rendered(configFiles.breakwater));
    const orders = config.upstreams.get('orders')!;
    const route = config.routes.find((r) => r.name === 'orders')!;
    expect(orders.loadBalancing).toBe('peak-ewma');
    expect(orders.outlierDetection?.latency).toBeDefined();
    expect(orders.outlierDetection?.consecutiveFailures).toBeGreaterThan(0);
    expect(route.retry?.adaptivePerTryTimeout).toBeDefined();
    expect(route.hedge?.adaptiveDelay?.percentile).toBe(95);
  });

  it('change one thing in each variant of the Breakwater file, and keep it valid', () => {
    const base = rendered(configFiles.breakwater);
    const orders = (name: (typeof variantNames)[number]) => breakwater(variantConfig(base, name)).routes.find((r) => r.name === 'orders')!;

    const noHedge = orders('breakwater-no-hedge');
    expect(noHedge.hedge).toBeUndefined();
    expect(noHedge.retry?.adaptivePerTryTimeout).toBeDefined();

    const tight = orders('breakwater-fixed-tight');
    expect(tight.hedge).toBeUndefined();
    expect(tight.retry?.adaptivePerTryTimeout).toBeUndefined();
    expect(tight.retry?.perTryTimeoutMs).toBe(fixedPerTry.tightMs);

    const loose = orders('breakwater-fixed-loose');
    expect(loose.retry?.perTryTimeoutMs).toBe(fixedPerTry.looseMs);

    // Everything else is the file as it is: the catalog route and the upstreams.
    const config = breakwater(variantConfig(base, 'breakwater-fixed-tight'));
    expect(config.upstreams).toEqual(breakwater(base).upstreams);
    expect(config.routes.find((r) => r.name === 'catalog')).toEqual(breakwater(base).routes.find((r) => r.name === 'catalog'));
  });
});
