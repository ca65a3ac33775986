import { describe, expect, it } from 'vitest';
import { handshakeRetry } from '../../src/stack/build.ts';
import { configFromYaml } from '../support/breakwater.ts';

/** The effective retry block of a route written with `retry`. */
function routeRetry(retry: string | undefined) {
  const config = configFromYaml(`
upstreams:
  chat: {endpoints: ["http://127.0.0.1:9"]}
routes:
  - name: chat
    upstream: chat
${retry === undefined ? '' : `    retry: ${retry}\n`}`);
  return config.routes[0]!.retry;
}

describe('the retries of a WebSocket handshake', () => {
  it("keep the route's connect-failure retries, with its attempts and budget, and nothing else", () => {
    const retry = routeRetry('{maxAttempts: 4, retryOn: [connect-failure, reset, 503]}');
    expect(handshakeRetry(retry)).toEqual({ ...retry, retryOn: ['connect-failure'] });
  });

  it('are none when the route does not retry connect failures', () => {
    expect(handshakeRetry(routeRetry('{retryOn: [reset, 503]}'))).toBeUndefined();
  });

  it('are none when the route does not retry at all', () => {
    expect(handshakeRetry(routeRetry(undefined))).toBeUndefined();
  });
});
