import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { watchConfigFile } from '../../src/config/watch.ts';
import type { Clock } from '../../src/runtime/clock.ts';
import { configMapVolume } from '../support/configmap.ts';

const NOTICE_WITHIN_MS = 5000;

/**
 * Completed reads through node:fs/promises, so a test can tell when the watcher's check has read
 * the file and acted on what it read, instead of hoping it has.
 */
const fileReads = vi.hoisted(() => {
  let completed = 0;
  let waiters: { count: number; wake: () => void }[] = [];
  return {
    completed(): void {
      completed += 1;
      const due = waiters.filter((waiter) => waiter.count <= completed);
      waiters = waiters.filter((waiter) => waiter.count > completed);
      // A macrotask later, the check's own continuation (compare, call back) has run too.
      for (const waiter of due) setImmediate(waiter.wake);
    },
    /** Resolves once `more` further reads have completed and the code awaiting them has run. */
    further(more: number, withinMs: number): Promise<void> {
      const count = completed + more;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no file read within ${withinMs}ms`)), withinMs);
        waiters.push({
          count,
          wake: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  // The cast keeps readFile's overloads, which a wrapper passing its arguments through cannot spell.
  const readFile = ((...args: Parameters<typeof actual.readFile>) =>
    actual.readFile(...args).finally(() => fileReads.completed())) as typeof actual.readFile;
  return { ...actual, readFile };
});

/** Counts onChange calls; `next()` resolves on the next one, or fails after a bound. */
function changeRecorder() {
  let calls = 0;
  let waiters: (() => void)[] = [];
  return {
    get calls() {
      return calls;
    },
    onChange: () => {
      calls += 1;
      const ready = waiters;
      waiters = [];
      for (const wake of ready) wake();
    },
    next(): Promise<void> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no change noticed within ${NOTICE_WITHIN_MS}ms`)), NOTICE_WITHIN_MS);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** A Clock whose timers fire only when the test says so. */
class ManualClock implements Clock {
  #timers = new Set<() => void>();
  #armed: (() => void)[] = [];

  now(): number {
    return 0;
  }

  wallNow(): number {
    return 0;
  }

  setTimer(_ms: number, fire: () => void): () => void {
    this.#timers.add(fire);
    for (const wake of this.#armed.splice(0)) wake();
    return () => this.#timers.delete(fire);
  }

  /** Resolves when the watcher next arms its debounce timer, i.e. once it has seen an event. */
  nextTimer(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no file event within ${NOTICE_WITHIN_MS}ms`)), NOTICE_WITHIN_MS);
      this.#armed.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  fireAll(): void {
    const due = [...this.#timers];
    this.#timers.clear();
    for (const fire of due) fire();
  }
}

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempConfig(content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-watch-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'breakwater.yaml');
  await writeFile(file, content);
  return file;
}

function watch(file: string, onChange: () => void, clock?: Clock): void {
  const stop = watchConfigFile(file, onChange, { debounceMs: 20, ...(clock ? { clock } : {}) });
  cleanups.push(stop);
}

describe('watchConfigFile', () => {
  it('notices the file being rewritten in place', async () => {
    const file = await tempConfig('routes: []\n');
    const changes = changeRecorder();
    watch(file, changes.onChange);

    // An operator edits the file where it is.
    const changed = changes.next();
    await writeFile(file, 'routes: []\n# edited\n');
    await changed;
    expect(changes.calls).toBeGreaterThanOrEqual(1);
  });

  it('notices the file being replaced by a rename, again and again', async () => {
    const file = await tempConfig('version: 1\n');
    const changes = changeRecorder();
    watch(file, changes.onChange);

    // An editor writes a temporary file next to it and renames it over the original.
    for (const version of [2, 3]) {
      const changed = changes.next();
      const temporary = `${file}.swp`;
      await writeFile(temporary, `version: ${version}\n`);
      await rename(temporary, file);
      await changed;
    }
    // The second rename was seen too: the watch did not stay on the first file's inode.
    expect(await readFile(file, 'utf8')).toBe('version: 3\n');
  });

  it('notices kubelet swapping the ..data symlink of a ConfigMap volume', async () => {
    const volume = await configMapVolume('version: 1\n');
    cleanups.push(() => rm(volume.dir, { recursive: true, force: true }));
    const changes = changeRecorder();
    watch(volume.file, changes.onChange);

    // kubelet publishes two updates; each removes the previous timestamped folder.
    for (const version of [2, 3]) {
      const changed = changes.next();
      await volume.update(`version: ${version}\n`);
      await changed;
      expect(await readFile(volume.file, 'utf8')).toBe(`version: ${version}\n`);
    }
  });

  it('notices a change even when no file-system event leads to a check', async () => {
    const file = await tempConfig('version: 1\n');
    const changes = changeRecorder();
    // Events would only be acted on after an hour: only the periodic read can notice.
    cleanups.push(watchConfigFile(file, changes.onChange, { debounceMs: 3_600_000, pollIntervalMs: 50 }));

    const changed = changes.next();
    await writeFile(file, 'version: 2\n');
    await changed;
    expect(changes.calls).toBe(1);
  });

  it('does not call back when the file is rewritten with the same content', async () => {
    const file = await tempConfig('routes: []\n');
    const clock = new ManualClock();
    const changes = changeRecorder();
    watch(file, changes.onChange, clock);

    // The same bytes are written again: the watcher sees the event and checks the file.
    const sawRewrite = clock.nextTimer();
    await writeFile(file, 'routes: []\n');
    await sawRewrite;
    // Both pending timers fire (the debounce and the periodic read): two checks read the file.
    const checked = fileReads.further(2, NOTICE_WITHIN_MS);
    clock.fireAll();
    await checked;
    expect(changes.calls).toBe(0);

    // A real change is still noticed afterwards.
    const changed = changes.next();
    await writeFile(file, 'routes: []\n# changed\n');
    clock.fireAll();
    await changed;
    expect(changes.calls).toBe(1);
  });
});
