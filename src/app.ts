// The composition root: one running Breakwater made of its listeners, its running state, its
// telemetry and admin servers, and the reloads that swap the state.

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ReloadHistory } from './admin/reloads.ts';
import { adminSource } from './admin/source.ts';
import { deadLetterEndpoints } from './admin/dead-letters.ts';
import { startAdminServer } from './admin/server.ts';
import { configHash } from './config/hash.ts';
import { allProblems, formatProblem, parseConfig, type ConfigProblem } from './config/load.ts';
import { redactConfig, type ServerAddresses } from './config/redact.ts';
import type { Config } from './config/types.ts';
import { watchConfigFile } from './config/watch.ts';
import { lintConfig } from './lint/warnings.ts';
import type { PolicyEvents } from './exchange/events.ts';
import type { ListenerObserver } from './proxy/listener.ts';
import { ListenerSet } from './proxy/listeners.ts';
import { systemClock, type Clock } from './runtime/clock.ts';
import { systemRandom, type Random } from './runtime/random.ts';
import { DeadLetterKeeper } from './policies/dead-letter/keeper.ts';
import { PolicyRegistries } from './stack/build.ts';
import { StoreRegistry } from './stores/registry.ts';
import { buildRunningState, retiredUpstreams, type RunningState, type StateDependencies } from './stack/state.ts';
import { createAccessLogger, createLogger, flushEverySecond, writeAccessLog, writeTunnelLog } from './telemetry/logger.ts';
import { createMetrics, type Metrics } from './telemetry/metrics.ts';
import { fanOut, logDeadLetterDrops, logPolicyEvents } from './telemetry/policy-log.ts';
import { createPolicyMetrics } from './telemetry/policy-metrics.ts';
import { startTelemetryServer } from './telemetry/server.ts';
import { createStoreMetrics } from './telemetry/store-metrics.ts';
import { spanEvents } from './telemetry/tracing/span-events.ts';
import { otlpEndpointSet } from './telemetry/tracing/asked.ts';

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

/** The longest a start or a reload waits for the first DNS answers. */
const firstLookupWaitMs = 5_000;

/** Every endpoint of the upstreams with outlier detection, for breakwater_endpoint_ejected. */
function ejectionGauge(state: RunningState, now: number): { upstream: string; endpoint: string; ejected: boolean }[] {
  const rows: { upstream: string; endpoint: string; ejected: boolean }[] = [];
  for (const upstream of state.upstreams.values()) {
    if (upstream.config.outlierDetection === undefined) continue;
    for (const endpoint of upstream.endpointSet.rows(now)) {
      if (endpoint.state !== 'draining') rows.push({ upstream: upstream.name, endpoint: endpoint.endpoint, ejected: endpoint.state === 'ejected' });
    }
  }
  return rows;
}

/** `changed: false`: the file is the config already running, so nothing was applied. */
export type ReloadResult = { ok: true; changed: boolean } | { ok: false; problems: string[] };

/** Logs a config's warnings (one line for all of them), at start and at each reload. */
export function logConfigWarnings(logger: Logger, configPath: string, warnings: readonly ConfigProblem[]): void {
  if (warnings.length === 0) return;
  logger.warn({ config: configPath, warnings: warnings.map(formatProblem) }, 'config warnings');
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
  /** The last reloads, for the admin server. */
  readonly reloads = new ReloadHistory();
  #state: RunningState;
  #listeners: ListenerSet | undefined;
  /** Run in reverse order at the end of a drain. */
  #closers: (() => Promise<void> | void)[] = [];
  #ready = false;
  #draining = false;
  #drained: Promise<void> | undefined;
  #reloading: Promise<unknown> = Promise.resolve();
  #telemetryPort = 0;
  #adminPort = 0;
  /** The addresses the telemetry and admin servers were started on; a reload cannot move them. */
  #servers: ServerAddresses | undefined;
  readonly #registries: PolicyRegistries;
  readonly #stores: StoreRegistry;
  readonly #deadLetters: DeadLetterKeeper;
  readonly #stateDeps: StateDependencies;

  constructor(options: BreakwaterOptions) {
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? systemRandom;
    this.logger = options.logger ?? createLogger();
    this.accessLogger = options.accessLogger ?? options.logger ?? createAccessLogger({ clock: this.clock });
    this.metrics = createMetrics();
    this.events = fanOut(
      createPolicyMetrics(this.metrics.registry, {
        breakers: () => this.#registries.breakers.snapshot(this.clock.now()),
        bulkheads: () => this.#registries.bulkheads.snapshot(),
        endpoints: () => ejectionGauge(this.#state, this.clock.now()),
        adaptiveTimeouts: () => this.#registries.latencies.adaptiveTimeouts(this.clock.now()),
        deadLetters: () => this.#deadLetters.depths(),
      }),
      logPolicyEvents(this.logger),
      logDeadLetterDrops(this.logger, this.clock),
      spanEvents,
    );
    this.#registries = new PolicyRegistries(this.events);
    this.#stores = new StoreRegistry({ clock: this.clock, events: createStoreMetrics(this.metrics.registry, this.logger) });
    this.#deadLetters = new DeadLetterKeeper({ clock: this.clock });
    this.configPath = options.configPath;
    const metrics = this.metrics;
    this.#stateDeps = {
      registries: this.#registries,
      stores: this.#stores,
      clock: this.clock,
      random: this.random,
      events: this.events,
      observeAttempt: (attempt) => metrics.recordAttempt(attempt),
      deadLetters: this.#deadLetters,
    };
    const hash = options.configHash ?? configHash(JSON.stringify(redactConfig(options.config)));
    this.#state = buildRunningState(options.config, hash, undefined, this.#stateDeps);
    this.metrics.setConfigInfo(hash);
  }

  get config(): Config {
    return this.#state.config;
  }

  get ready(): boolean {
    return this.#ready && !this.#draining;
  }

  /** Bound ports by listener name, and of the telemetry and admin servers (useful with port 0). */
  get ports(): { listeners: Record<string, number>; telemetry: number; admin: number } {
    return { listeners: this.#listeners?.ports ?? {}, telemetry: this.#telemetryPort, admin: this.#adminPort };
  }

  async start(): Promise<void> {
    const config = this.#state.config;
    await this.#discovered(this.#state);
    const tracing = otlpEndpointSet() ? await (await import('./telemetry/tracing/start.ts')).startTracing({ logger: this.logger }) : undefined;
    // Closers run in reverse: the SDK stops last, exporting the spans of the last requests.
    if (tracing !== undefined) this.#closers.push(() => tracing.shutdown());

    this.#servers = { telemetry: config.telemetry.address, admin: config.admin.address };
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
      admin: adminSource({
        state: () => this.#state,
        servers: () => this.#servers,
        breakers: this.#registries.breakers,
        latencies: this.#registries.latencies,
        bulkheads: this.#registries.bulkheads,
        reloads: this.reloads,
        stores: this.#stores,
        clock: this.clock,
        reload: () => this.reload(),
      }),
      deadLetters: deadLetterEndpoints({ keeper: this.#deadLetters, state: () => this.#state, clock: this.clock, events: this.events }),
    });
    this.#adminPort = admin.port;
    this.#closers.push(() => admin.close());

    this.#listeners = new ListenerSet({
      clock: this.clock,
      state: () => this.#state,
      observer: this.#observer(),
      events: this.events,
      draining: () => this.#draining,
      tracer: tracing,
    });
    await this.#listeners.reconcile(config);
    this.#closers.push(flushEverySecond(this.accessLogger, this.clock));
    this.#ready = true;
    this.logger.info(
      { listeners: this.ports.listeners, telemetry: this.#telemetryPort, admin: this.#adminPort, config: this.configPath },
      'breakwater started',
    );
  }

  /** Where each finished request goes (the request metrics and the access log), and the connection counts. */
  #observer(): ListenerObserver {
    const { metrics, accessLogger } = this;
    return {
      listenerStarted: (listener) => metrics.listenerStarted(listener),
      connectionOpened: (listener) => metrics.connectionOpened(listener),
      connectionClosed: (listener) => metrics.connectionClosed(listener),
      connectionRejected: (listener, reason) => metrics.connectionRejected(listener, reason),
      requestStarted: (listener) => metrics.requestStarted(listener),
      requestFinished: (record) => {
        metrics.requestFinished(record.listener);
        metrics.recordRequest(record);
        writeAccessLog(accessLogger, record);
      },
      // A WebSocket's handshake is counted as a request at its 101 (its duration, the handshake's);
      // the access-log line waits for the tunnel to close, to tell its length and bytes.
      tunnelOpened: (record) => {
        metrics.requestFinished(record.listener);
        metrics.recordRequest(record);
        metrics.tunnelOpened(record.listener, record.route!);
      },
      tunnelClosed: (record) => {
        metrics.tunnelClosed(record.listener, record.route!);
        writeTunnelLog(accessLogger, record);
      },
    };
  }

  /** Replaces the running config. Requests in flight finish on the one they started with. */
  async apply(config: Config, hash: string): Promise<void> {
    const previous = this.#state;
    // Compared with the servers as started, not with the previous config: a reload that moves
    // an address back to where its server runs leaves nothing pending, and one that keeps a
    // moved address leaves it pending still.
    const running = this.#servers;
    for (const server of ['telemetry', 'admin'] as const) {
      const before = running?.[server];
      const after = config[server].address;
      if (before !== undefined && (before.host !== after.host || before.port !== after.port)) {
        this.logger.warn({ server, running: before, configured: after }, `the ${server} address changes at the next start`);
      }
    }
    const next = buildRunningState(config, hash, previous, this.#stateDeps);
    // New DNS names are looked up before requests are sent to them.
    await this.#discovered(next);
    this.#state = next;
    if (this.#ready) await this.#listeners?.reconcile(config);
    this.metrics.setConfigInfo(hash);
    // Each waits for the requests still using its pools, then closes their connections.
    for (const upstream of retiredUpstreams(previous, next)) void upstream.close();
  }

  /**
   * Waits until the dns:// endpoints of `state` have been looked up once, or for at most
   * `firstLookupWaitMs`: a DNS server that does not answer must not hold a start or a reload
   * for long; the upstream then has no endpoints (503 upstream_unavailable) until one answers.
   */
  async #discovered(state: RunningState): Promise<void> {
    let cancel: (() => void) | undefined;
    const waited = new Promise<void>((resolve) => (cancel = this.clock.setTimer(firstLookupWaitMs, resolve)));
    await Promise.race([Promise.all([...state.upstreams.values()].map((upstream) => upstream.endpointSet.discovered)), waited]);
    cancel?.();
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
    const hash = configHash(text);
    if (hash === this.#state.hash) {
      // Said and counted, so that an operator who sent SIGHUP or POST /reload after an edit
      // that never reached the file (a ConfigMap not yet synced, the wrong file) can tell.
      this.metrics.recordReload('unchanged', this.clock.wallNow());
      this.reloads.record('unchanged', this.clock.wallNow(), { hash });
      this.logger.info({ config: path, hash }, 'config unchanged');
      return { ok: true, changed: false };
    }
    const parsed = parseConfig(text, path, { lint: lintConfig });
    if (!parsed.ok) {
      // The warnings too, in file order: the same lines `breakwater validate` prints.
      return this.#reloadFailed(allProblems(parsed).map(formatProblem));
    }
    logConfigWarnings(this.logger, path, parsed.warnings);
    try {
      await this.apply(parsed.config, hash);
    } catch (error) {
      return this.#reloadFailed([`applying the new config failed: ${(error as Error).message}`]);
    }
    this.metrics.recordReload('success', this.clock.wallNow());
    this.reloads.record('success', this.clock.wallNow(), { hash });
    this.logger.info({ config: path, hash }, 'config reloaded');
    return { ok: true, changed: true };
  }

  #reloadFailed(problems: string[]): ReloadResult {
    this.metrics.recordReload('failure', this.clock.wallNow());
    this.reloads.record('failure', this.clock.wallNow(), { problems });
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
    const drainTimeoutMs = this.#state.config.shutdown.drainTimeoutMs;
    this.logger.info({ drainTimeoutMs }, 'draining');
    const cut = (await this.#listeners?.drain(drainTimeoutMs)) ?? { requests: 0, tunnels: 0 };
    if (cut.requests > 0 || cut.tunnels > 0) {
      this.logger.warn({ inFlight: cut.requests, websockets: cut.tunnels }, 'drain timeout: closed the remaining connections');
    }
    await Promise.all([...this.#state.upstreams.values()].map((upstream) => upstream.destroy()));
    this.#deadLetters.close();
    // After the last request: its answer may still be on its way into a store.
    await this.#stores.close();
    for (const close of this.#closers.reverse()) await close();
    this.#closers = [];
    this.logger.info('stopped');
  }
}
