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
 * At most two glibc malloc arenas: each thread that allocates (V8's compiler and GC helpers,
 * libuv's pool) otherwise gets an arena of its own, which keeps what it once held.
 */
export const nodeEnvironment = { MALLOC_ARENA_MAX: '2' } as const;
