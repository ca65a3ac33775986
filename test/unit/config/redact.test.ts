import { describe, expect, it } from 'vitest';
import { formatProblem, parseConfig, redactConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';

function valid(yaml: string): Config {
  const result = parseConfig(yaml, 'test.yaml');
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.config;
}

const config = valid(`
upstreams:
  billing:
    endpoints: ["http://svc:p4ss@billing:8080", "http://billing-2:8080"]
routes:
  - name: billing
    upstream: billing
    match:
      headers:
        Authorization: Bearer abc
        x-api-key: k-123
        x-session-token: t-456
        x-tenant: acme
    fallback:
      chain:
        - response:
            status: 200
            headers: {set-cookie: "sid=1", x-client-secret: s-789, content-type: text/plain}
            body: ok
`);

describe('redactConfig', () => {
  const redacted = JSON.stringify(redactConfig(config));

  it('never shows a secret-looking header value or endpoint credentials', () => {
    for (const secret of ['Bearer abc', 'k-123', 't-456', 'sid=1', 's-789', 'p4ss', 'svc:']) {
      expect(redacted).not.toContain(secret);
    }
  });

  it('replaces exactly those values and leaves the rest readable', () => {
    const view = JSON.parse(redacted) as {
      upstreams: Record<string, { endpoints: string[] }>;
      routes: { match: { headers: Record<string, string> }; fallback: { chain: { headers: Record<string, string> }[] } }[];
    };

    expect(view.upstreams.billing?.endpoints).toEqual(['http://[redacted]@billing:8080', 'http://billing-2:8080']);
    expect(view.routes[0]?.match.headers).toEqual({
      authorization: '[redacted]',
      'x-api-key': '[redacted]',
      'x-session-token': '[redacted]',
      'x-tenant': 'acme',
    });
    expect(view.routes[0]?.fallback.chain[0]?.headers).toEqual({
      'set-cookie': '[redacted]',
      'x-client-secret': '[redacted]',
      'content-type': 'text/plain',
    });
  });

  it('is plain JSON with the upstreams keyed by name, and leaves the running config untouched', () => {
    const view = redactConfig(config) as { upstreams: Record<string, unknown>; routes: unknown[] };

    expect(Object.keys(view.upstreams)).toEqual(['billing']);
    expect(JSON.parse(JSON.stringify(view))).toEqual(view);
    expect(config.upstreams.get('billing')?.endpoints[0]).toBe('http://svc:p4ss@billing:8080');
    expect(config.routes[0]?.match.headers?.authorization).toBe('Bearer abc');
  });
});

describe('redactConfig with the addresses the servers run on', () => {
  const running = { telemetry: { host: '0.0.0.0', port: 15020 }, admin: { host: '127.0.0.1', port: 15000 } };

  it('shows no pendingRestart while the config agrees with the running servers', () => {
    const view = redactConfig(config, running);

    expect(view.telemetry).toEqual({ address: running.telemetry });
    expect(view.admin).toEqual({ address: running.admin });
    expect(view).not.toHaveProperty('pendingRestart');
  });

  it('shows the running addresses, and lists under pendingRestart the ones that take effect at the next start', () => {
    const moved = valid(`
telemetry: {address: 0.0.0.0:9090}
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - {name: api, upstream: api}
`);

    const view = redactConfig(moved, running);

    expect(view.telemetry).toEqual({ address: { host: '0.0.0.0', port: 15020 } });
    expect(view.admin).toEqual({ address: { host: '127.0.0.1', port: 15000 } });
    expect(view.pendingRestart).toEqual({ telemetry: { address: { host: '0.0.0.0', port: 9090 } } });
  });
});
