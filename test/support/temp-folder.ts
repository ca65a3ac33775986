// Vitest global setup: the whole run gets a temporary folder of its own (TMPDIR, which
// os.tmpdir() and the processes the tests start follow), removed at the end. A test that
// leaves something there fails the run, so no test litters the system's temp folder, and runs
// side by side on one machine never see each other's files.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Node's own compile cache, kept across modules on purpose; not a test's folder.
const NOT_A_TEST_FOLDER = new Set(['node-compile-cache']);

export default async function setup(): Promise<() => Promise<void>> {
  const root = await mkdtemp(join(tmpdir(), 'breakwater-tests-'));
  process.env.TMPDIR = root;
  return async () => {
    const left = (await readdir(root)).filter((name) => !NOT_A_TEST_FOLDER.has(name));
    await rm(root, { recursive: true, force: true });
    if (left.length > 0) {
      throw new Error(`tests left temporary files behind (remove them in the test's clean-up): ${left.join(', ')}`);
    }
  };
}
