// The listeners a config asks for: started, kept, replaced or closed as the config changes,
// and drained together at shutdown.

import type { Config } from '../config/types.ts';
import { headersCheckIntervalMs, Listener, type ListenerOptions } from './listener.ts';

/** What every listener shares; the config gives each its name and limits. */
export type ListenerSetOptions = Omit<ListenerOptions, 'name' | 'maxHeaderBytes' | 'maxConcurrent' | 'limits'>;

interface RunningListener {
  readonly listener: Listener;
  /**
   * The settings a listener cannot change while it runs: address, header limit, concurrency
   * limit, and how often Node checks request heads (which follows headersTimeout). The other
   * connection limits change in place.
   */
  readonly key: string;
  readonly port: number;
}

function listenerKey(config: Config, name: string): string {
  const listener = config.listeners.find((candidate) => candidate.name === name)!;
  const checkInterval = headersCheckIntervalMs(listener.limits.headersTimeoutMs);
  return `${listener.address.host}:${listener.address.port}:${config.limits.maxHeaderBytes}:${listener.maxConcurrent ?? ''}:${checkInterval}`;
}

/** Stops accepting and resolves once every connection has closed, WebSocket tunnels included. */
function closeListener(listener: Listener): Promise<void> {
  const closed = listener.close();
  listener.closeIdleConnections();
  return closed;
}

/** How much a drain cut short when its timeout ended. */
export interface DrainCut {
  /** Requests still in flight, whose connections were closed. */
  readonly requests: number;
  /** WebSocket tunnels closed with a close frame 1001. */
  readonly tunnels: number;
}

export class ListenerSet {
  readonly #options: ListenerSetOptions;
  readonly #running = new Map<string, RunningListener>();
  /** Listeners a reload closed whose WebSocket tunnels still run: a drain closes those too. */
  readonly #retired = new Set<Listener>();

  constructor(options: ListenerSetOptions) {
    this.#options = options;
  }

  /** Bound ports by listener name (useful with port 0). */
  get ports(): Record<string, number> {
    const ports: Record<string, number> = {};
    for (const [name, running] of this.#running) ports[name] = running.port;
    return ports;
  }

  /** Starts the listeners `config` gained or changed, and closes the ones it lost. */
  async reconcile(config: Config): Promise<void> {
    const wanted = new Map(config.listeners.map((listener) => [listener.name, listener]));
    for (const [name, running] of this.#running) {
      const listenerConfig = wanted.get(name);
      if (listenerConfig !== undefined && running.key === listenerKey(config, name)) {
        running.listener.setLimits(listenerConfig.limits);
        continue;
      }
      this.#running.delete(name);
      // Its requests finish first; its WebSocket tunnels run on until they close.
      const listener = running.listener;
      this.#retired.add(listener);
      const closed = closeListener(listener).then(() => this.#retired.delete(listener));
      await Promise.race([closed, listener.tunnelsOnly()]);
    }
    for (const [name, listenerConfig] of wanted) {
      if (this.#running.has(name)) continue;
      const listener = new Listener({
        ...this.#options,
        name,
        maxHeaderBytes: config.limits.maxHeaderBytes,
        maxConcurrent: listenerConfig.maxConcurrent,
        limits: listenerConfig.limits,
      });
      this.#options.observer.listenerStarted(name);
      const port = await listener.listen(listenerConfig.address.host, listenerConfig.address.port);
      this.#running.set(name, { listener, key: listenerKey(config, name), port });
    }
  }

  /**
   * Stops accepting, closes idle keep-alive connections and waits for requests in flight and
   * WebSocket tunnels; past `timeoutMs` the tunnels still open are closed with a close frame 1001
   * to both sides, and the other connections still open are closed. Resolves with what was cut.
   */
  async drain(timeoutMs: number): Promise<DrainCut> {
    const listeners = [...[...this.#running.values()].map((running) => running.listener), ...this.#retired];
    this.#running.clear();
    this.#retired.clear();
    const closed = Promise.all(listeners.map(closeListener));
    const timedOut = new Promise<'timeout'>((resolve) => {
      const cancel = this.#options.clock.setTimer(timeoutMs, () => resolve('timeout'));
      void closed.then(cancel);
    });
    if ((await Promise.race([closed, timedOut])) !== 'timeout') return { requests: 0, tunnels: 0 };
    const requests = listeners.reduce((sum, listener) => sum + listener.inFlight, 0);
    // Tunnels get their close frames and a short grace to answer them (tunnel.ts); the
    // connections Node still counts as HTTP ones are closed at once.
    const tunnels = listeners.reduce((sum, listener) => sum + listener.closeTunnels(), 0);
    for (const listener of listeners) listener.closeAllConnections();
    await closed;
    return { requests, tunnels };
  }
}
