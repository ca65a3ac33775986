import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { startAdminServer } from './admin/server.ts';
import { formatProblem, parseConfig, redactConfig } from './config/load.ts';
import type { Config } from './config/types.ts';
import { watchConfigFile } from './config/watch.ts';
import { Listener, type ActiveRoute, type ListenerObserver, type ProxyState } from './proxy/listener.ts';
import { compileRouter } from './routing/match.ts';
import { systemClock, type Clock } from './runtime/clock.ts';
import { systemRandom, type Random } from './runtime/random.ts';
import { buildRouteHandler, PolicyRegistries } from './stack/build.ts';
import { createAccessLogger, createLogger, writeAccessLog } from './telemetry/logger.ts';
import { createMetrics, type Metrics } from './telemetry/metrics.ts';
import { fanOut, logPolicyEvents } from './telemetry/policy-log.ts';
import { createPolicyMetrics } from './telemetry/policy-metrics.ts';
import { startTelemetryServer } from './telemetry/server.ts';
import { spanEvents, startTracing, type Tracing } from './telemetry/tracing.ts';
import type { PolicyEvents } from './policies/events.ts';
import type { AttemptObserver } from './upstream/forward.ts';
import { Upstream } from './upstream/upstream.ts';

export interface BreakwaterOptions {
  readonly config: Config;
  /** The file reloads read; without it only `apply()` changes the config. */
  readonly configPath?: string;
  /** Hash of the config file's text, for breakwater_config_info. */
  readonly configHash?: string;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: Logger;
  /** Where access-log lines go; default: `logger` when one is given, else buffered stdout. */
  readonly accessLogger?: Logger;
}

export type ReloadResult = { ok: true; changed: boolean } | { ok: false; problems: string[] };

interface RunningState extends ProxyState {
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly routes: readonly ActiveRoute[];
  readonly hash: string;
}

interface RunningListener {
  readonly listener: Listener;
  /** The settings a listener cannot change while it runs: address and header limit. */
  readonly key: string;
  port: number;
}

function listenerKey(config: Config, name: string): string {
  const listener = config.listeners.find((candidate) => candidate.name === name)!;
  return `${listener.address.host}:${listener.address.port}:${config.limits.maxHeaderBytes}:${listener.maxConcurrent ?? ''}`;
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** A running Breakwater: listeners, upstream pools, telemetry and admin servers, reloads. */
export class Breakwater {
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly accessLogger: Logger;
  readonly metrics: Metrics;
  readonly events: PolicyEvents;
  readonly configPath: string | undefined;
  #state: RunningState;
  #listeners = new Map<string, RunningListener>();
  #closers: (() => Promise<void> | void)[] = [];
  #ready = false;
  #draining = false;
  #drained: Promise<void> | undefined;
  #reloading: Promise<unknown> = Promise.resolve();
  #telemetryPort = 0;
  #adminPort = 0;
  /** Started with Breakwater when the OTEL_* variables ask for traces. */
  #tracing: Tracing | undefined;
  readonly #observer: ListenerObserver;
  readonly #registries: PolicyRegistries;
  readonly #observeAttempt: AttemptObserver;

  constructor(options: BreakwaterOptions) {
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? systemRandom;
    this.logger = options.logger ?? createLogger();
    this.accessLogger = options.accessLogger ?? options.logger ?? createAccessLogger();
    this.metrics = createMetrics();
    this.events = fanOut(
      createPolicyMetrics(this.metrics.registry, {
        breakers: () => this.#registries.breakers.snapshot(this.clock.now()),
        bulkheads: () => this.#registries.bulkheads.snapshot(),
      }),
      logPolicyEvents(this.logger),
      spanEvents,
    );
    this.#registries = new PolicyRegistries(this.events);
    this.configPath = options.configPath;
    this.#observeAttempt = (attempt) => this.metrics.recordAttempt(attempt);
    this.#state = this.#build(options.config, options.configHash ?? hashOf(JSON.stringify(redactConfig(options.config))), undefined);
    this.metrics.setConfigInfo(this.#state.hash);
    const metrics = this.metrics;
    const accessLogger = this.accessLogger;
    this.#observer = {
      requestStarted: (listener) => metrics.requestStarted(listener),
      requestFinished: (record) => {
        metrics.requestFinished(record.listener);
        metrics.recordRequest(record);
        writeAccessLog(accessLogger, record);
      },
    };
  }

  get config(): Config {
    return this.#state.config;
  }

  get ready(): boolean {
    return this.#ready && !this.#draining;
  }

  /** Bound ports by listener name, and of the telemetry and admin servers (useful with port 0). */
  get ports(): { listeners: Record<string, number>; telemetry: number; admin: number } {
    const listeners: Record<string, number> = {};
    for (const [name, running] of this.#listeners) listeners[name] = running.port;
    return { listeners, telemetry: this.#telemetryPort, admin: this.#adminPort };
  }

  #build(config: Config, hash: string, previous: RunningState | undefined): RunningState {
    const upstreams = new Map<string, Upstream>();
    for (const [name, upstreamConfig] of config.upstreams) {
      const old = previous?.upstreams.get(name);
      const reuse = old?.sameConnectionSettings(upstreamConfig) ? old : undefined;
      upstreams.set(name, new Upstream(upstreamConfig, this.random, reuse));
    }
    const routes: ActiveRoute[] = config.routes.map((route) => ({
      name: route.name,
      listener: route.listener,
      upstream: route.upstream,
      timeoutMs: route.timeoutMs,
      match: route.match,
      handler: buildRouteHandler(route, {
        upstreams,
        registries: this.#registries,
        clock: this.clock,
        random: this.random,
        events: this.events,
        observeAttempt: this.#observeAttempt,
        deadlineHeader: config.deadline.header,
      }),
    }));
    this.#registries.retainFor(config);
    return {
      config,
      router: compileRouter(routes),
      routes,
      upstreams,
      hash,
      // The caller's budget headers are replaced by the budget of each attempt.
      consumedHeaders: new Set([...config.deadline.accept, config.deadline.header]),
    };
  }

  async start(): Promise<void> {
    const config = this.#state.config;
    const tracing = await startTracing({ logger: this.logger });
    if (tracing !== undefined) {
      this.#tracing = tracing;
      // Closers run in reverse: the SDK stops last, exporting the spans of the last requests.
      this.#closers.push(() => tracing.shutdown());
    }
    const telemetry = await startTelemetryServer({
      address: config.telemetry.address,
      metrics: this.metrics,
      health: { isReady: () => this.ready },
      appProbes: () => this.#state.config.telemetry.appProbes,
      clock: this.clock,
    });
    this.#telemetryPort = telemetry.port;
    this.#closers.push(() => telemetry.close());
    const admin = await startAdminServer({
      address: config.admin.address,
      admin: {
        config: () => redactConfig(this.#state.config),
        routes: () =>
          this.#state.routes.map((route) => ({
            name: route.name,
            listener: route.listener,
            match: route.match,
            upstream: route.upstream,
            timeoutMs: route.timeoutMs,
          })),
        circuits: () => this.#registries.breakers.snapshot(this.clock.now()),
        setCircuit: (name, state) => this.#registries.breakers.setMode(name, state),
        reload: async () => {
          const result = await this.reload();
          return result.ok ? { ok: true as const } : result;
        },
      },
    });
    this.#adminPort = admin.port;
    this.#closers.push(() => admin.close());
    await this.#reconcileListeners(config);
    this.#flushAccessLogEverySecond();
    this.#ready = true;
    this.logger.info(
      { listeners: this.ports.listeners, telemetry: this.#telemetryPort, admin: this.#adminPort, config: this.configPath },
      'breakwater started',
    );
  }

  /** A quiet sidecar's access lines still reach the log within a second. */
  #flushAccessLogEverySecond(): void {
    let cancel = (): void => undefined;
    const arm = (): void => {
      cancel = this.clock.setTimer(1000, () => {
        this.accessLogger.flush();
        arm();
      });
    };
    arm();
    this.#closers.push(() => {
      cancel();
      this.accessLogger.flush();
    });
  }

  /** Starts listeners the config gained or changed, and closes the ones it lost. */
  async #reconcileListeners(config: Config): Promise<void> {
    const wanted = new Map(config.listeners.map((listener) => [listener.name, listener]));
    for (const [name, running] of this.#listeners) {
      if (wanted.has(name) && running.key === listenerKey(config, name)) continue;
      this.#listeners.delete(name);
      await this.#closeListener(running.listener);
    }
    for (const [name, listenerConfig] of wanted) {
      if (this.#listeners.has(name)) continue;
      const listener = new Listener({
        name,
        maxHeaderBytes: config.limits.maxHeaderBytes,
        maxConcurrent: listenerConfig.maxConcurrent,
        clock: this.clock,
        state: () => this.#state,
        observer: this.#observer,
        events: this.events,
        draining: () => this.#draining,
        tracer: this.#tracing,
      });
      const port = await listener.listen(listenerConfig.address.host, listenerConfig.address.port);
      this.#listeners.set(name, { listener, key: listenerKey(config, name), port });
    }
  }

  async #closeListener(listener: Listener): Promise<void> {
    const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
    listener.server.closeIdleConnections();
    await closed;
  }

  /** Replaces the running config. Requests in flight finish on the one they started with. */
  async apply(config: Config, hash: string): Promise<void> {
    const previous = this.#state;
    for (const server of ['telemetry', 'admin'] as const) {
      const before = previous.config[server].address;
      const after = config[server].address;
      if (before.host !== after.host || before.port !== after.port) {
        this.logger.warn({ server, running: before, configured: after }, `the ${server} address changes at the next start`);
      }
    }
    const next = this.#build(config, hash, previous);
    this.#state = next;
    if (this.#ready) await this.#reconcileListeners(config);
    this.metrics.setConfigInfo(hash);
    for (const [name, upstream] of previous.upstreams) {
      if (next.upstreams.get(name)?.endpoints !== upstream.endpoints) {
        // Waits for the requests still using these pools, then closes their connections.
        void upstream.close();
      }
    }
  }

  /** Reads the config file again; an invalid file keeps the running config. */
  reload(): Promise<ReloadResult> {
    const result = this.#reloading.then(() => this.#reloadNow());
    this.#reloading = result.catch(() => undefined);
    return result;
  }

  async #reloadNow(): Promise<ReloadResult> {
    const path = this.configPath;
    if (path === undefined) return { ok: false, problems: ['no config file to reload from'] };
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      return this.#reloadFailed([`${path}: ${(error as Error).message}`]);
    }
    const hash = hashOf(text);
    if (hash === this.#state.hash) return { ok: true, changed: false };
    const parsed = parseConfig(text, path);
    if (!parsed.ok) {
      return this.#reloadFailed(parsed.problems.map(formatProblem));
    }
    try {
      await this.apply(parsed.config, hash);
    } catch (error) {
      return this.#reloadFailed([`applying the new config failed: ${(error as Error).message}`]);
    }
    this.metrics.recordReload('success', this.clock.wallNow());
    this.logger.info({ config: path, hash }, 'config reloaded');
    return { ok: true, changed: true };
  }

  #reloadFailed(problems: string[]): ReloadResult {
    this.metrics.recordReload('failure', this.clock.wallNow());
    this.logger.error({ config: this.configPath, problems }, 'config reload failed; keeping the running config');
    return { ok: false, problems };
  }

  /** Follows the config file on disk (file writes and ConfigMap symlink swaps). */
  watch(): void {
    if (this.configPath === undefined) return;
    const stop = watchConfigFile(this.configPath, () => void this.reload(), { clock: this.clock });
    this.#closers.push(stop);
  }

  /**
   * Graceful shutdown: not ready at once, no new connections, idle keep-alive connections
   * closed, requests in flight finish (with `Connection: close`) until `drainTimeout`, then
   * everything closes.
   */
  drain(): Promise<void> {
    this.#drained ??= this.#drain();
    return this.#drained;
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    this.logger.info({ drainTimeoutMs: this.#state.config.shutdown.drainTimeoutMs }, 'draining');
    const listeners = [...this.#listeners.values()].map((running) => running.listener);
    const closed = Promise.all(listeners.map((listener) => this.#closeListener(listener)));
    const timedOut = new Promise<'timeout'>((resolve) => {
      const cancel = this.clock.setTimer(this.#state.config.shutdown.drainTimeoutMs, () => resolve('timeout'));
      void closed.then(cancel);
    });
    if ((await Promise.race([closed, timedOut])) === 'timeout') {
      this.logger.warn({ inFlight: listeners.reduce((sum, l) => sum + l.inFlight, 0) }, 'drain timeout: closing remaining connections');
      for (const listener of listeners) listener.server.closeAllConnections();
      await closed;
    }
    this.#listeners.clear();
    await Promise.all([...this.#state.upstreams.values()].map((upstream) => upstream.destroy()));
    for (const close of this.#closers.reverse()) await close();
    this.#closers = [];
    this.logger.info('stopped');
  }
}

/**
 * Starts Breakwater for the command line: serves until SIGTERM or SIGINT drains it, and
 * reloads on SIGHUP and on changes to the config file.
 */
export async function startBreakwater(options: { config: Config; configPath: string }): Promise<Breakwater> {
  const text = await readFile(options.configPath, 'utf8');
  const breakwater = new Breakwater({ config: options.config, configPath: options.configPath, configHash: hashOf(text) });
  try {
    await breakwater.start();
  } catch (error) {
    // What did start (the telemetry and admin servers) would keep a failed process running.
    await breakwater.drain();
    throw error;
  }
  breakwater.watch();
  process.on('SIGHUP', () => void breakwater.reload());
  const stop = (): void => {
    void breakwater.drain().then(
      () => {
        breakwater.logger.flush();
        breakwater.accessLogger.flush();
        process.exit(0);
      },
      (error: unknown) => {
        breakwater.logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return breakwater;
}
