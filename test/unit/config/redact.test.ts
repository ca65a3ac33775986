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
