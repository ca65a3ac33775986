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
import { LOG_SCRIPTS, RECORD_SCRIPTS, logKeys, recordKey } from './redis-scripts.ts';
import type { LogBackend } from './guard.ts';
import type { RawLogEntry } from './log.ts';
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
  breakwaterLogAppend: LogScript;
  breakwaterLogUpdate: LogScript;
  breakwaterLogRemove: LogScript;
  breakwaterLogTrim: LogScript;
  breakwaterLogStats: LogScript;
  breakwaterLogList: LogScript;
}

type LogScript = (keys: readonly RedisArgument[], args: readonly RedisArgument[]) => Promise<unknown>;

const SCRIPTS = { ...RECORD_SCRIPTS, ...LOG_SCRIPTS };

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
    log: redisLog(commands, config.keyPrefix),
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

function text(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  throw new UnexpectedReply('unexpected reply from Redis: not text');
}

function count(value: unknown): number {
  if (typeof value !== 'number') throw new UnexpectedReply('unexpected reply from Redis: not a count');
  return value;
}

function redisLog(commands: RecordCommands, keyPrefix: string): LogBackend {
  const bytes = (body: Uint8Array): Buffer => Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return {
    async append(stream, entry, maxEntries) {
      const keys = logKeys(keyPrefix, stream);
      const args: RedisArgument[] = [entry.id, entry.partition, String(entry.time), entry.tags, entry.meta, String(maxEntries)];
      if (entry.body !== undefined) args.push(bytes(entry.body));
      const reply = await commands.breakwaterLogAppend([keys.all, keys.partitionPrefix + entry.partition, keys.partitions, keys.entryPrefix + entry.id], args);
      return count(reply) === 1;
    },
    async list(stream, range) {
      const keys = logKeys(keyPrefix, stream);
      const newest = range.order === 'newest';
      // ZRANGEBYLEX bounds in the listing's direction: from the start (past `after`) to the end.
      let from: string;
      let to: string;
      if (newest) {
        from = range.after !== undefined && range.after <= range.high ? `(${range.after}` : `[${range.high}`;
        to = `[${range.low}`;
      } else {
        from = range.after !== undefined && range.after >= range.low ? `(${range.after}` : `[${range.low}`;
        to = `[${range.high}`;
      }
      const args: RedisArgument[] = [range.order, from, to, String(range.limit), String(range.scan), keys.entryPrefix];
      for (const [name, value] of range.tags) args.push(name, value);
      const set = range.partition === undefined ? keys.all : keys.partitionPrefix + range.partition;
      const reply = await commands.breakwaterLogList([set], args);
      if (!Array.isArray(reply) || reply.length !== 2 || !Array.isArray(reply[0])) throw new UnexpectedReply('unexpected reply from Redis: not a page');
      const [flat, next] = reply as [unknown[], unknown];
      const entries: RawLogEntry[] = [];
      for (let i = 0; i + 4 < flat.length; i += 5) {
        entries.push({ id: text(flat[i]), partition: text(flat[i + 1]), time: Number(text(flat[i + 2])), tags: text(flat[i + 3]), meta: text(flat[i + 4]), body: undefined });
      }
      return next === null || next === false ? { entries } : { entries, next: text(next) };
    },
    async get(stream, id) {
      const keys = logKeys(keyPrefix, stream);
      const reply = await commands.hmGet(keys.entryPrefix + id, ['partition', 'time', 'tags', 'meta', 'body']);
      if (!Array.isArray(reply) || reply.length !== 5) throw new UnexpectedReply('unexpected reply from Redis: not an entry');
      const [partition, time, tags, meta, body] = reply as unknown[];
      if (partition === null || partition === undefined) return undefined;
      if (body !== null && !Buffer.isBuffer(body)) throw new UnexpectedReply('unexpected reply from Redis: not bytes');
      return { id, partition: text(partition), time: Number(text(time)), tags: text(tags), meta: text(meta), body: body ?? undefined };
    },
    async update(stream, id, meta) {
      const keys = logKeys(keyPrefix, stream);
      return count(await commands.breakwaterLogUpdate([keys.entryPrefix + id], [meta])) === 1;
    },
    async remove(stream, id) {
      const keys = logKeys(keyPrefix, stream);
      return count(await commands.breakwaterLogRemove([keys.all, keys.partitions, keys.entryPrefix + id], [id, keys.partitionPrefix])) === 1;
    },
    async stats(stream) {
      const keys = logKeys(keyPrefix, stream);
      const reply = await commands.breakwaterLogStats([keys.partitions], [keys.partitionPrefix, keys.entryPrefix]);
      if (!Array.isArray(reply)) throw new UnexpectedReply('unexpected reply from Redis: not stats');
      const stats: { partition: string; entries: number; oldest?: number }[] = [];
      for (let i = 0; i + 2 < reply.length; i += 3) {
        const oldest = text(reply[i + 2]);
        stats.push({ partition: text(reply[i]), entries: count(reply[i + 1]), ...(oldest === '' ? {} : { oldest: Number(oldest) }) });
      }
      return stats.sort((a, b) => (a.partition < b.partition ? -1 : a.partition > b.partition ? 1 : 0));
    },
    async trim(stream, partition, bounds, max) {
      const keys = logKeys(keyPrefix, stream);
      const reply = await commands.breakwaterLogTrim(
        [keys.all, keys.partitionPrefix + partition, keys.partitions],
        [bounds.below ?? '', bounds.keep === undefined ? '' : String(bounds.keep), String(max), keys.entryPrefix, partition],
      );
      return count(reply);
    },
  };
}

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
      const client = createClient({ ...clientOptions, url: topology.url, scripts: SCRIPTS, commandOptions });
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
          scripts: SCRIPTS,
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
          breakwaterLogAppend: (keys, args) => cluster.breakwaterLogAppend(keys, args),
          breakwaterLogUpdate: (keys, args) => cluster.breakwaterLogUpdate(keys, args),
          breakwaterLogRemove: (keys, args) => cluster.breakwaterLogRemove(keys, args),
          breakwaterLogTrim: (keys, args) => cluster.breakwaterLogTrim(keys, args),
          breakwaterLogStats: (keys, args) => cluster.breakwaterLogStats(keys, args),
          breakwaterLogList: (keys, args) => cluster.breakwaterLogList(keys, args),
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
        scripts: SCRIPTS,
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
