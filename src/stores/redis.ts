// The redis store: records in a Redis server, Cluster or Sentinel set shared by every replica
// of a Deployment, through node-redis (@redis/client; docs/decisions/0003-redis-client.md).
// The client runs without an offline queue, so while Redis is away each operation fails at
// once instead of piling up, and it reconnects by itself.

import { ErrorReply, RESP_TYPES, TimeoutError, TimeoutReadError, createClient, createCluster, createSentinel } from '@redis/client';
import type { RedisArgument } from '@redis/client';
import type { RedisStoreConfig } from '../config/types.ts';
import type { Clock } from '../runtime/clock.ts';
import type { RecordBackend, StoreStatus } from './guard.ts';
import type { RawRecord } from './records.ts';
import { RECORD_SCRIPTS, recordKey } from './redis-scripts.ts';
import { StoreError } from './store.ts';
import type { StoreErrorCode } from './store.ts';

// How long one connection attempt may take. Attempts run in the background, never while a
// request waits, so this can be far longer than an operation's timeout.
const CONNECT_TIMEOUT_MS = 2000;
// A client whose connect() gave up (a cluster client tries its seeds once) is asked again on
// this schedule, doubling up to the cap, until it connects.
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5000;
// Redis Cluster's fixed number of hash slots.
const CLUSTER_SLOTS = 16_384;

/** The commands the store sends, as every connection mode offers them. */
interface RecordCommands {
  breakwaterTake(key: RedisArgument, token: RedisArgument, meta: RedisArgument, ttlMs: number, body?: RedisArgument): Promise<unknown>;
  breakwaterReplace(key: RedisArgument, token: RedisArgument, meta: RedisArgument, ttlMs: number, body?: RedisArgument): Promise<unknown>;
  breakwaterRelease(key: RedisArgument, token: RedisArgument): Promise<unknown>;
  hmGet(key: RedisArgument, fields: RedisArgument[]): Promise<unknown>;
}

interface Connection {
  readonly commands: RecordCommands;
  connect(): Promise<unknown>;
  destroy(): Promise<void> | void;
}

export function redisBackend(config: RedisStoreConfig, clock: Clock, status: StoreStatus): RecordBackend {
  const connection = connect(config, status);
  let closed = false;
  let cancelRetry: (() => void) | undefined;

  // The store opens without waiting for Redis: the proxy serves while a store is down.
  const start = (delayMs: number): void => {
    connection.connect().catch((error: unknown) => {
      status.failed(unavailable(config.name, error));
      if (closed) return;
      cancelRetry = clock.setTimer(delayMs, () => start(Math.min(delayMs * 2, RECONNECT_MAX_MS)));
    });
  };
  start(RECONNECT_FIRST_MS);

  const { commands } = connection;
  const keyOf = (key: string): string => recordKey(config.keyPrefix, key);
  const bodyArgument = (body: Uint8Array | undefined): RedisArgument | undefined =>
    body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength);

  return {
    async take(key, record, ttlMs) {
      const reply = await commands.breakwaterTake(keyOf(key), record.token, record.meta, ttlMs, bodyArgument(record.body));
      return reply === null ? undefined : readRecord(reply);
    },
    async replace(key, record, ttlMs) {
      return (await commands.breakwaterReplace(keyOf(key), record.token, record.meta, ttlMs, bodyArgument(record.body))) === 1;
    },
    async release(key, token) {
      return (await commands.breakwaterRelease(keyOf(key), token)) === 1;
    },
    async get(key) {
      return readRecord(await commands.hmGet(keyOf(key), ['meta', 'body']));
    },
    classify: classifyRedisError,
    async close() {
      closed = true;
      cancelRetry?.();
      await connection.destroy();
    },
  };
}

/** A reply of a shape the store never asks for: something else wrote the key. */
class UnexpectedReply extends Error {}

/** `[meta, body]` as HMGET and the take script answer it; a missing meta means no record. */
function readRecord(reply: unknown): RawRecord | undefined {
  if (!Array.isArray(reply) || reply.length !== 2) throw new UnexpectedReply('unexpected reply from Redis: not a record');
  const [meta, body] = reply as unknown[];
  if (meta === null || meta === undefined) return undefined;
  if (!Buffer.isBuffer(meta) || (body !== null && !Buffer.isBuffer(body))) throw new UnexpectedReply('unexpected reply from Redis: not bytes');
  return { meta, body: body ?? undefined };
}

function connect(config: RedisStoreConfig, status: StoreStatus): Connection {
  const topology = config.topology;
  // A server URL says for itself whether to use TLS; nodes found through cluster seeds or
  // sentinels have no URL, so they use TLS when the seeds' URLs are rediss://.
  const tls = topology.mode !== 'server' && topology.nodes.some((url) => url.startsWith('rediss:'));
  const socket = { connectTimeout: CONNECT_TIMEOUT_MS, ...(tls ? { tls: true as const } : {}) };
  // Without the offline queue a command sent while disconnected fails at once; the timeout
  // takes a command out of the client's queue if it could not be sent in time.
  const clientOptions = { disableOfflineQueue: true, socket, ...credentialsOf(config) };
  const commandOptions = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer }, timeout: config.timeoutMs };
  const onError = (error: unknown): void => status.failed(unavailable(config.name, error));
  const onReady = (): void => status.reached();

  switch (topology.mode) {
    case 'server': {
      const client = createClient({ ...clientOptions, url: topology.url, scripts: RECORD_SCRIPTS, commandOptions });
      // An 'error' event nobody listens to would end the process.
      client.on('error', onError).on('ready', onReady);
      return {
        commands: client,
        connect: () => client.connect(),
        destroy: () => client.destroy(),
      };
    }
    case 'cluster': {
      const open = () =>
        createCluster({
          rootNodes: topology.nodes.map((url) => ({ url })),
          // Nodes found through the seeds get the same options and credentials.
          defaults: clientOptions,
          scripts: RECORD_SCRIPTS,
          commandOptions,
        })
          .on('error', onError)
          .on('node-error', onError)
          .on('node-ready', onReady)
          .on('connect', onReady);
      let cluster = open();
      return {
        // Through the current client, which connect() may replace.
        commands: {
          breakwaterTake: (key, token, meta, ttlMs, body) => cluster.breakwaterTake(key, token, meta, ttlMs, body),
          breakwaterReplace: (key, token, meta, ttlMs, body) => cluster.breakwaterReplace(key, token, meta, ttlMs, body),
          breakwaterRelease: (key, token) => cluster.breakwaterRelease(key, token),
          hmGet: (key, fields) => cluster.hmGet(key, fields),
        },
        async connect() {
          await cluster.connect();
          // A cluster still being formed answers with part of its slots, or none; the client
          // keeps that map and fails commands for the missing slots. Start again with a new
          // client until the cluster serves every slot. (`_slots` is node-redis's slot table.)
          if (cluster._slots.slots.filter(Boolean).length < CLUSTER_SLOTS) {
            const partial = cluster;
            cluster = open();
            partial.destroy();
            throw new Error('the cluster does not serve every slot yet');
          }
        },
        destroy: () => cluster.destroy(),
      };
    }
    case 'sentinel': {
      const sentinelCredentials = credentialsOfUrls(topology.nodes);
      const sentinel = createSentinel({
        name: topology.masterName,
        sentinelRootNodes: topology.nodes.map(hostAndPort),
        nodeClientOptions: clientOptions,
        sentinelClientOptions: { socket, ...sentinelCredentials },
        scripts: RECORD_SCRIPTS,
        commandOptions,
        // Errors of the clients inside reach the store's health rather than going unheard.
        passthroughClientErrorEvents: true,
      });
      sentinel.on('error', onError).on('ready', onReady);
      return {
        commands: sentinel,
        connect: () => sentinel.connect(),
        destroy: () => sentinel.destroy(),
      };
    }
  }
}

interface Credentials {
  username?: string;
  password?: string;
}

/** The data nodes' credentials: the store's username and password, else those of the first URL that has some. */
function credentialsOf(config: RedisStoreConfig): Credentials {
  const fromUrls = config.topology.mode === 'cluster' ? credentialsOfUrls(config.topology.nodes) : {};
  return {
    ...fromUrls,
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
  };
}

function credentialsOfUrls(urls: readonly string[]): Credentials {
  for (const text of urls) {
    const url = new URL(text);
    if (url.username === '' && url.password === '') continue;
    return {
      ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
      ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
    };
  }
  return {};
}

function hostAndPort(text: string): { host: string; port: number } {
  const url = new URL(text);
  // IPv6 hosts come back in brackets from URL; sockets want them bare.
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port === '' ? 26379 : Number(url.port) };
}

/** What went wrong, from whatever a client emits as an error (sentinel clients emit strings too). */
function reasonOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'error' in error && error.error instanceof Error) return error.error.message;
  return String(error);
}

function unavailable(store: string, error: unknown): StoreError {
  const reason = reasonOf(error);
  return new StoreError(classifyRedisError(error) === 'timeout' ? 'timeout' : 'unavailable', `store "${store}": ${reason}`, {
    store,
    operation: 'open',
    cause: error,
  });
}

// Error replies that mean "this server cannot serve now", as opposed to a refused command.
const UNAVAILABLE_REPLIES = /^(CLUSTERDOWN|LOADING|MASTERDOWN|TRYAGAIN|READONLY|NOREPLICAS|BUSY|NOAUTH|WRONGPASS)\b/;

function classifyRedisError(error: unknown): StoreErrorCode {
  if (error instanceof ErrorReply) return UNAVAILABLE_REPLIES.test(error.message) ? 'unavailable' : 'failed';
  if (error instanceof UnexpectedReply) return 'failed';
  // node-redis's own timeouts: a command that could not be sent, or whose answer did not come, in time.
  if (error instanceof TimeoutError || error instanceof TimeoutReadError) return 'timeout';
  // Everything else the client throws is about the connection: offline, closed, refused, reset.
  return 'unavailable';
}
