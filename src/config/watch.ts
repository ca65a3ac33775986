// Notices when the config file's content changes on disk, however it was changed: written in
// place, replaced by a rename (what editors do), or swapped by kubelet, which updates a
// ConfigMap volume by pointing the `..data` symlink at a new timestamped folder.
//
// fs.watch on the folder (not the file) sees all three: a watch on the file itself would stay
// on the old inode after a rename or a symlink swap. Events only trigger a check; the check
// reads the file through its symlinks and compares a hash, so unrelated files in the folder
// and rewrites with the same content never call back.

import { configHash } from './hash.ts';
import { readFileSync, realpathSync, watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { systemClock } from '../runtime/clock.ts';
import type { Clock } from '../runtime/clock.ts';

export interface WatchOptions {
  /** Drives the debounce timer. */
  readonly clock?: Clock;
  /** Quiet time after the last file-system event before the file is read (kubelet's swap is several events). */
  readonly debounceMs?: number;
  /**
   * The file is also read this often, events or not: inotify can drop events (a full queue,
   * the watch limit reached, a watched folder replaced at the wrong moment), and a missed
   * ConfigMap update would otherwise never be applied.
   */
  readonly pollIntervalMs?: number;
}

const DEFAULT_DEBOUNCE_MS = 100;
const DEFAULT_POLL_INTERVAL_MS = 2_000;

/** Calls `onChange` each time the content of `path` changes; returns a function that stops watching. */
export function watchConfigFile(path: string, onChange: () => void, options: WatchOptions = {}): () => void {
  const file = resolve(path);
  const clock = options.clock ?? systemClock;
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const watchers = new Map<string, FSWatcher>();
  let lastHash = hashOrUndefined(() => readFileSync(file));
  let cancelTimer: (() => void) | undefined;
  // Checks run one after another, so each compares against the hash the previous one saw.
  let checks = Promise.resolve();
  let closed = false;

  const schedule = (): void => {
    if (closed) return;
    cancelTimer?.();
    cancelTimer = clock.setTimer(debounceMs, () => {
      cancelTimer = undefined;
      checks = checks.then(check);
    });
  };

  // The folder of the path, and the folder the path resolves to through symlinks (for a link
  // to a file elsewhere). Re-resolved on every check, since a swap can change the second one.
  const watchFolders = (): void => {
    const wanted = new Set([dirname(file)]);
    try {
      wanted.add(dirname(realpathSync(file)));
    } catch {
      // The file is missing for now (mid-rename); the folder watch sees it come back.
    }
    for (const [folder, watcher] of watchers) {
      if (wanted.has(folder)) continue;
      watcher.close();
      watchers.delete(folder);
    }
    for (const folder of wanted) {
      if (watchers.has(folder)) continue;
      try {
        const watcher = watch(folder, schedule);
        // A watched folder that disappears (kubelet deletes the old timestamped one) ends its watch.
        watcher.on('error', () => {
          watcher.close();
          watchers.delete(folder);
        });
        watchers.set(folder, watcher);
      } catch {
        // Not watchable now; the next check tries again.
      }
    }
  };

  const check = async (): Promise<void> => {
    if (closed) return;
    watchFolders();
    let content: Buffer;
    try {
      content = await readFile(file);
    } catch {
      return;
    }
    // An in-place write truncates first; an empty file is that moment (or never valid anyway),
    // so wait for the event of the write that follows.
    if (content.length === 0) return;
    const hash = configHash(content);
    if (closed || hash === lastHash) return;
    lastHash = hash;
    try {
      onChange();
    } catch (error) {
      // Surface the listener's bug as an uncaught exception, as an EventEmitter would, without
      // breaking the chain of checks.
      queueMicrotask(() => {
        throw error;
      });
    }
  };

  let cancelPoll: () => void = () => undefined;
  const poll = (): void => {
    cancelPoll = clock.setTimer(pollIntervalMs, () => {
      checks = checks.then(check);
      poll();
    });
  };

  watchFolders();
  poll();
  return () => {
    closed = true;
    cancelTimer?.();
    cancelPoll();
    for (const watcher of watchers.values()) watcher.close();
    watchers.clear();
  };
}

function hashOrUndefined(read: () => Buffer): string | undefined {
  try {
    return configHash(read());
  } catch {
    return undefined;
  }
}
