// The stores of the running config, kept across reloads: a store whose settings a reload leaves
// unchanged keeps its connection, file and records; a changed one is opened anew and the old one
// closed; a store the config no longer names is closed.

import type { StoreConfig } from '../config/types.ts';
import { openStore, type StoreDeps } from './open.ts';
import type { Store, StoreHealth } from './store.ts';

interface Entry {
  readonly settings: string;
  readonly store: Store;
}

export class StoreRegistry {
  readonly #deps: StoreDeps;
  readonly #entries = new Map<string, Entry>();
  readonly #closing = new Set<Promise<void>>();

  constructor(deps: StoreDeps) {
    this.#deps = deps;
  }

  /**
   * Opens the stores `configs` gained or changed and closes the ones it lost or changed. Throws a
   * StoreError, opening nothing, when a new store cannot be opened (a sqlite file of another
   * program, say): the running stores then stay as they were.
   */
  retainFor(configs: ReadonlyMap<string, StoreConfig>): void {
    const opened = new Map<string, Entry>();
    try {
      for (const [name, config] of configs) {
        const settings = JSON.stringify(config);
        if (this.#entries.get(name)?.settings === settings) continue;
        opened.set(name, { settings, store: openStore(config, this.#deps) });
      }
    } catch (error) {
      for (const entry of opened.values()) this.#close(entry.store);
      throw error;
    }
    for (const [name, entry] of this.#entries) {
      if (!configs.has(name) || opened.has(name)) {
        this.#entries.delete(name);
        this.#close(entry.store);
      }
    }
    for (const [name, entry] of opened) this.#entries.set(name, entry);
  }

  /** The store of that name; config validation makes sure policies name only stores that exist. */
  get(name: string): Store {
    const entry = this.#entries.get(name);
    if (entry === undefined) throw new Error(`no store named "${name}"`);
    return entry.store;
  }

  health(): StoreHealth[] {
    return [...this.#entries.values()].map((entry) => entry.store.health());
  }

  /** Closes every store, and waits for the ones a reload replaced. */
  async close(): Promise<void> {
    for (const entry of this.#entries.values()) this.#close(entry.store);
    this.#entries.clear();
    await Promise.all(this.#closing);
  }

  #close(store: Store): void {
    const closing = store.close().catch(() => undefined);
    this.#closing.add(closing);
    void closing.then(() => this.#closing.delete(closing));
  }
}
