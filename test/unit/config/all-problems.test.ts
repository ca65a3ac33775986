import { describe, expect, it } from 'vitest';
import { allProblems, formatProblem, parseConfig } from '../../../src/config/load.ts';
import { lintConfig } from '../../../src/lint/warnings.ts';

/** What `breakwater validate` prints for `yaml`: errors and warnings, in file order. */
function report(yaml: string): string[] {
  return allProblems(parseConfig(yaml, 'test.yaml', { lint: lintConfig })).map(formatProblem);
}

describe('one run reports every problem', () => {
  it('checks the rules and references of the well-formed parts after a shape mistake', () => {
    expect(
      report(`
listeners:
  - {name: outbound, address: 127.0.0.1:15001}
  - {name: inbound, address: "0.0.0.0:99999"}
upstreams:
  payments:
    endpoints: [http://payments:8080, "https://payments:8443"]
routes:
  - name: charge
    upstream: payment
    retry: {retryon: [503]}
  - name: refund
    listener: inbond
    upstream: payments
    timeout: soon
    retry: {retryOn: [404]}
`),
    ).toEqual([
      'test.yaml:4:30 listeners[1](inbound).address: port must be from 1 to 65535 (or 0 for any free port), got 99999',
      'test.yaml:7:39 upstreams.payments.endpoints[1]: only http:// endpoints are supported (Breakwater does not speak TLS to upstreams), got "https://payments:8443"',
      'test.yaml:10:15 routes[0](charge).upstream: unknown upstream "payment" (did you mean "payments"?)',
      'test.yaml:11:13 routes[0](charge).retry.retryon: unknown key "retryon" (did you mean "retryOn"?)',
      'test.yaml:13:15 routes[1](refund).listener: unknown listener "inbond" (did you mean "inbound"?)',
      'test.yaml:15:14 routes[1](refund).timeout: must be a duration: a number with a unit ms, s, m, h or d (250ms, 1.5s, 1m, 7d) or integer milliseconds',
      'test.yaml:16:23 routes[1](refund).retry.retryOn[0]: 404 cannot be retried: retryOn may list 429 but no other 4xx',
    ]);
  });

  it('checks the other items of a list after one item is cut', () => {
    expect(
      report(`
upstreams:
  api: {endpoints: [http://api:8080, http://api:8080, 5, "http://api:8080/v1"]}
routes:
  - {name: first, upstream: 5}
  - {name: second, upstream: apx, timeout: 0}
`),
    ).toEqual([
      'test.yaml:3:38 upstreams.api.endpoints[1]: "http://api:8080" is listed twice',
      'test.yaml:3:55 upstreams.api.endpoints[2]: must be a string',
      'test.yaml:3:58 upstreams.api.endpoints[3]: endpoint must be an origin without path or query (http://host:port), got "http://api:8080/v1"',
      'test.yaml:5:29 routes[0](first).upstream: must be a string',
      'test.yaml:6:30 routes[1](second).upstream: unknown upstream "apx" (did you mean "api"?)',
      'test.yaml:6:44 routes[1](second).timeout: must be greater than 0',
    ]);
  });

  it('reports no unknown upstream when the upstreams section itself is malformed', () => {
    expect(
      report(`
upstreams: [payments]
routes:
  - {name: charge, upstream: payments}
`),
    ).toEqual(['test.yaml:2:12 upstreams: must be a mapping (key: value)']);
  });

  it('knows the name of a malformed upstream or listener, so references to it are not reported', () => {
    expect(
      report(`
listeners:
  - {name: outbound, address: here}
upstreams:
  payments: {endpoints: http://payments:8080}
  "bad name": {endpoints: [http://x:1]}
routes:
  - {name: charge, upstream: payments, listener: outbound, match: {host: payments}}
  - {name: other, upstream: bad name, match: {host: other}}
`),
    ).toEqual([
      'test.yaml:3:31 listeners[0](outbound).address: must be host:port, for example 127.0.0.1:15001, 0.0.0.0:15006 or [::1]:15000',
      'test.yaml:5:25 upstreams.payments.endpoints: must be a list',
      'test.yaml:6:3 upstreams["bad name"]: "bad name" must be a name of letters, digits, ".", "_" and "-", starting with a letter or digit',
    ]);
  });

  it('reports no unknown store when the stores section is malformed, and a misspelt one when it is not', () => {
    expect(
      report(`
stores: [shared]
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - {name: api, upstream: api, idempotency: {store: shared}}
`),
    ).toEqual(['test.yaml:2:9 stores: must be a mapping (key: value)']);
    expect(
      report(`
stores:
  shared: {type: memory, maxEntries: 0}
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - {name: api, upstream: api, idempotency: {store: sharde}}
`),
    ).toEqual([
      'test.yaml:3:38 stores.shared.maxEntries: must be at least 1',
      'test.yaml:7:53 routes[0](api).idempotency.store: unknown store "sharde" (did you mean "shared"?)',
    ]);
  });

  it('reports no unknown listener when a listener has no readable name', () => {
    expect(
      report(`
listeners:
  - {address: 127.0.0.1:15001}
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - {name: api, upstream: api, listener: edge}
`),
    ).toEqual(['test.yaml:3:5 listeners[0].name: missing required key "name"']);
  });

  it('does not compare with a default that stands in for a malformed value', () => {
    expect(
      report(`
listeners: [{name: outbound, address: 0.0.0.0:15020}]
telemetry: {address: everywhere}
upstreams:
  api:
    endpoints: [http://api:8080]
    circuitBreaker: {openFor: soon, openForMax: 1s}
routes:
  - name: api
    upstream: api
    listener: [outbound]
    retry: {backoff: {base: fast, max: 1ms}}
`),
    ).toEqual([
      'test.yaml:3:22 telemetry.address: must be host:port, for example 127.0.0.1:15001, 0.0.0.0:15006 or [::1]:15000',
      'test.yaml:7:31 upstreams.api.circuitBreaker.openFor: must be a duration: a number with a unit ms, s, m, h or d (250ms, 1.5s, 1m, 7d) or integer milliseconds',
      'test.yaml:11:15 routes[0](api).listener: must be a string',
      'test.yaml:12:29 routes[0](api).retry.backoff.base: must be a duration: a number with a unit ms, s, m, h or d (250ms, 1.5s, 1m, 7d) or integer milliseconds',
    ]);
  });

  it('still reports a duplicate name when one of the two routes is malformed', () => {
    expect(
      report(`
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - {name: api, upstream: api, match: {host: a}}
  - {name: api, upstream: api, timeout: later, match: {host: b}}
`),
    ).toEqual([
      'test.yaml:6:12 routes[1](api).name: route name "api" is already used by routes[0]',
      'test.yaml:6:41 routes[1](api).timeout: must be a duration: a number with a unit ms, s, m, h or d (250ms, 1.5s, 1m, 7d) or integer milliseconds',
    ]);
  });

  it('stops after the shape when the file is not a mapping', () => {
    expect(report('- routes\n- upstreams\n')).toEqual(['test.yaml:1:1: must be a mapping (key: value)']);
  });

  it('quotes a name that is not a plain name, so the path stays readable', () => {
    expect(
      report(`
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - {name: "charge (v2)", upstream: api}
`),
    ).toEqual([
      'test.yaml:5:12 routes[0]("charge (v2)").name: must be a name of letters, digits, ".", "_" and "-", starting with a letter or digit',
    ]);
  });
});
