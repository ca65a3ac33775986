// `npm run build`: Breakwater and its dependencies bundled into dist/cli/, as the package and
// the container image ship it. docs/decisions/0016-bundled-build.md says why a bundle.
//
// - The entry is dist/cli/main.js; every module it imports statically is in it or in a shared
//   chunk beside it. A dynamic import stays one: what a config does not use (the Redis client,
//   OpenTelemetry's SDK, pino-pretty) is a chunk of its own, loaded only when asked for.
// - Chunks sit in dist/cli/, as the compiled modules did in dist/<folder>/, so that paths a
//   module takes from its own URL (package.json two levels up, the admin page beside it) hold.
// - Minified without renaming functions and classes, so that stack traces still name them.
//   Source maps are written beside the chunks (not packed); `node --enable-source-maps` reads
//   them in a checkout.

import { cp, rm } from 'node:fs/promises';
import { build } from 'rolldown';

const root = new URL('../', import.meta.url);
const out = new URL('dist/cli/', root);

await rm(new URL('dist/', root), { recursive: true, force: true });
await build({
  input: { main: new URL('src/cli/main.ts', root).pathname },
  platform: 'node',
  logLevel: 'warn',
  output: {
    dir: out.pathname,
    format: 'esm',
    entryFileNames: '[name].js',
    chunkFileNames: '[name]-[hash].js',
    minify: true,
    keepNames: true,
    sourcemap: true,
  },
});
await cp(new URL('src/admin/page/', root), new URL('page/', out), { recursive: true });
