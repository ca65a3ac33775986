import { describe, expect, it } from 'vitest';
import { expandEnv } from '../../../src/config/env.ts';
import { formatProblem, parseConfig, redactConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';

const env = { REDIS_PASSWORD: 's3cret', REDIS_HOST: 'redis.infra', EMPTY: '' };

function valid(yaml: string): Config {
  const result = parseConfig(yaml, 'test.yaml', { env });
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.config;
}

function problems(yaml: string): string[] {
  const result = parseConfig(yaml, 'test.yaml', { env });
  return result.ok ? [] : result.problems.map(formatProblem);
}

describe('stores', () => {
  it('without a stores block, has one memory store named default', () => {
    expect([...valid('upstreams: {}\n').stores.values()]).toEqual([
      { name: 'default', type: 'memory', timeoutMs: 50, maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 },
    ]);
  });

  it('with a stores block, has exactly the stores it names', () => {
    const config = valid(`
stores:
  local: {type: sqlite, path: /var/lib/breakwater/state.db, timeout: 20ms}
  scratch: {type: memory, maxEntries: 500, maxBytes: 1MiB}
`);

    expect([...config.stores.keys()]).toEqual(['local', 'scratch']);
    expect(config.stores.get('local')).toEqual({ name: 'local', type: 'sqlite', timeoutMs: 20, path: '/var/lib/breakwater/state.db' });
    expect(config.stores.get('scratch')).toEqual({ name: 'scratch', type: 'memory', timeoutMs: 50, maxEntries: 500, maxBytes: 1024 * 1024 });
  });

  it('reads the three ways to reach Redis', () => {
    const config = valid(`
stores:
  shared: {type: redis, url: "redis://redis.infra:6379/0", keyPrefix: "bw:"}
  fleet: {type: redis, cluster: ["redis://r1:6379", "redis://r2:6379"]}
  ha: {type: redis, sentinel: {name: mymaster, nodes: ["redis://s1:26379"]}, username: app, password: pw}
`);

    expect(config.stores.get('shared')).toEqual({
      name: 'shared',
      type: 'redis',
      timeoutMs: 50,
      topology: { mode: 'server', url: 'redis://redis.infra:6379/0' },
      keyPrefix: 'bw:',
    });
    expect(config.stores.get('fleet')).toMatchObject({
      topology: { mode: 'cluster', nodes: ['redis://r1:6379', 'redis://r2:6379'] },
      keyPrefix: 'breakwater:',
    });
    expect(config.stores.get('ha')).toMatchObject({
      topology: { mode: 'sentinel', masterName: 'mymaster', nodes: ['redis://s1:26379'] },
      username: 'app',
      password: 'pw',
    });
  });

  it('expands ${VAR} and ${VAR:-default} from the environment in connection values', () => {
    const config = valid(`
stores:
  shared: {type: redis, url: "redis://:\${REDIS_PASSWORD}@\${REDIS_HOST}:6379", password: "\${REDIS_PASSWORD}"}
  local: {type: sqlite, path: "\${STATE_DIR:-/tmp/breakwater}/state.db"}
  blank: {type: sqlite, path: "\${EMPTY:-/srv}/state.db"}
`);

    expect(config.stores.get('shared')).toMatchObject({
      topology: { mode: 'server', url: 'redis://:s3cret@redis.infra:6379' },
      password: 's3cret',
    });
    expect(config.stores.get('local')).toMatchObject({ path: '/tmp/breakwater/state.db' });
    expect(config.stores.get('blank')).toMatchObject({ path: '/srv/state.db' });
  });

  it('never shows a password or URL credentials in the effective config dump', () => {
    const config = valid(`
stores:
  shared: {type: redis, url: "redis://app:\${REDIS_PASSWORD}@redis.infra:6379/2", password: "\${REDIS_PASSWORD}"}
  fleet: {type: redis, cluster: ["redis://:\${REDIS_PASSWORD}@r1:6379", "redis://r2:6379"]}
`);

    const dump = redactConfig(config);

    expect(JSON.stringify(dump)).not.toContain('s3cret');
    expect(dump.stores).toMatchObject({
      shared: { topology: { url: 'redis://[redacted]@redis.infra:6379/2' }, password: '[redacted]' },
      fleet: { topology: { nodes: ['redis://[redacted]@r1:6379', 'redis://r2:6379'] } },
    });
    // The running config keeps the real values.
    expect(config.stores.get('shared')).toMatchObject({ password: 's3cret' });
  });
});

describe('store problems', () => {
  it('name a key that belongs to another type of store', () => {
    expect(
      problems(`
stores:
  a: {type: memory, path: /tmp/x.db}
  b: {type: redis, url: "redis://r:6379", maxEntries: 10}
`),
    ).toEqual([
      'test.yaml:3:21 stores.a.path: "path" applies only to stores of type sqlite, not memory',
      'test.yaml:4:43 stores.b.maxEntries: "maxEntries" applies only to stores of type memory, not redis',
    ]);
  });

  it('ask for exactly one of url, cluster and sentinel', () => {
    expect(
      problems(`
stores:
  none: {type: redis}
  two:
    type: redis
    url: redis://r:6379
    cluster: [redis://r:6379]
`),
    ).toEqual([
      'test.yaml:3:16 stores.none.type: a redis store needs one of url, cluster or sentinel',
      'test.yaml:7:5 stores.two.cluster: give only one of url, cluster or sentinel (url is already given)',
    ]);
  });

  it('ask a sqlite store for its path', () => {
    expect(problems('stores:\n  local: {type: sqlite}\n')).toEqual(['test.yaml:2:17 stores.local.type: a sqlite store needs path: the database file']);
  });

  it('check Redis URLs without echoing them', () => {
    expect(
      problems(`
stores:
  a: {type: redis, url: "http://:\${REDIS_PASSWORD}@r:6379"}
  b: {type: redis, cluster: ["redis://r1:6379/1"]}
  c: {type: redis, url: "redis://r:6379/zero"}
`),
    ).toEqual([
      'test.yaml:3:25 stores.a.url: must be a redis:// or rediss:// URL with a host, such as redis://redis.infra:6379',
      'test.yaml:4:30 stores.b.cluster[0]: a cluster or sentinel node is redis://host:port, without a database number',
      'test.yaml:5:25 stores.c.url: the path of a redis URL is a database number, such as redis://redis:6379/0',
    ]);
  });

  it('report an environment variable that is not set, where it is used', () => {
    expect(problems('stores:\n  s: {type: redis, url: "redis://r:6379", password: "${NOPE}"}\n')).toEqual([
      'test.yaml:2:53 stores.s.password: environment variable NOPE is not set',
    ]);
  });

  it('refuse braces in a key prefix', () => {
    expect(problems('stores:\n  s: {type: redis, url: "redis://r:6379", keyPrefix: "{bw}:"}\n')).toEqual([
      'test.yaml:2:54 stores.s.keyPrefix: must not contain "{" or "}": each record\'s key goes in braces, so Redis Cluster keeps a record on one node',
    ]);
  });

  it('refuse unknown keys, bad names and unknown types, with the place of each', () => {
    expect(
      problems(`
stores:
  t: {type: memory, maxentries: 5}
  "bad name": {type: memory}
  u: {type: mongo}
`),
    ).toEqual([
      'test.yaml:3:21 stores.t.maxentries: unknown key "maxentries" (did you mean "maxEntries"?)',
      'test.yaml:4:3 stores["bad name"]: "bad name" must be a name of letters, digits, ".", "_" and "-", starting with a letter or digit',
      'test.yaml:5:13 stores.u.type: must be one of: memory, sqlite, redis',
    ]);
  });
});

describe('expandEnv', () => {
  it('replaces references, keeps other dollars, and lists what is unset', () => {
    expect(expandEnv('a ${X} b ${Y:-y} $Z ${', { X: '1' })).toEqual({ ok: true, value: 'a 1 b y $Z ${' });
    expect(expandEnv('${A}${B}', {})).toEqual({ ok: false, missing: ['A', 'B'] });
  });
});

describe('a route\'s deadLetter block', () => {
  it('takes the documented defaults when empty', () => {
    const config = valid(`
upstreams: {notifier: {endpoints: ['http://127.0.0.1:9']}}
routes:
  - {name: notify, upstream: notifier, deadLetter: {}}
`);

    expect(config.routes[0]?.deadLetter).toEqual({
      store: 'default',
      on: ['timeout', 'upstream-unavailable', 'circuit-open', 'bulkhead-full', '5xx'],
      maxBodyBytes: 1024 * 1024,
      retentionMs: 7 * 24 * 3_600_000,
      maxEntries: 100_000,
      keepHeaders: [],
    });
  });

  it('names a store that exists', () => {
    expect(
      problems(`
upstreams: {notifier: {endpoints: ['http://127.0.0.1:9']}}
stores: {shared: {type: memory}}
routes:
  - {name: notify, upstream: notifier, deadLetter: {store: sharde}}
`),
    ).toEqual(['test.yaml:5:60 routes[0](notify).deadLetter.store: unknown store "sharde" (did you mean "shared"?)']);
  });
});
