// How Node runs Breakwater in its container image: the Dockerfile's ENTRYPOINT flags and its
// ENV. `npm start` and the benchmarks run Breakwater the same way, so that what they show is
// what a pod does. docs/decisions/0014-memory-budget.md says why each is there;
// test/integration/package.test.ts holds the Dockerfile to these.

/**
 * - a young generation of 2 MiB per semi-space, instead of one V8 sizes from the machine's
 *   memory: short scavenges, and little memory held for it while idle;
 * - the old generation collected once it has grown by 30% over what the last full collection
 *   kept, instead of letting it grow up to fourfold first: under load most of a proxy's old
 *   generation is garbage waiting for that collection.
 */
export const nodeFlags = ['--max-semi-space-size=2', '--heap-growing-percent=30'] as const;

/**
 * - at most two glibc malloc arenas: each thread that allocates (V8's compiler and GC helpers,
 *   libuv's pool) otherwise gets an arena of its own, which keeps what it once held;
 * - fixed mmap and trim thresholds of 128 KiB (glibc's starting values): glibc otherwise raises
 *   its mmap threshold each time a mapped block is freed, up to 32 MiB, so that later large
 *   blocks land inside the heap, where the gaps they leave between live blocks are not given
 *   back to the system.
 */
export const nodeEnvironment = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_TRIM_THRESHOLD_: '131072' } as const;
