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
import { constants as http2Constants } from 'node:http2';
import { build, type Plugin } from 'rolldown';

/**
 * undici's HTTP/2 client requires node:http2 when it is loaded, which every undici client is,
 * whatever its upstream speaks; node:http2 loads Node's TLS code with it. Breakwater needs
 * neither until an upstream speaks h2c, so in the bundle undici's module gets node:http2's
 * constants (fixed values, taken here from the Node that builds, the version the package pins)
 * and loads node:http2 itself at its first connect. The build fails if undici's line changes.
 */
const undiciHttp2OnFirstUse: Plugin = {
  name: 'undici-http2-on-first-use',
  transform: {
    filter: { id: /[\\/]node_modules[\\/]undici[\\/]lib[\\/]dispatcher[\\/]client-h2\.js$/ },
    handler(code) {
      const eager = "http2 = require('node:http2')";
      if (code.split(eager).length !== 2) throw new Error(`undici's client-h2.js no longer reads ${eager}: check the bundle's HTTP/2 plugin`);
      const lazy = `http2 = { constants: ${JSON.stringify(http2Constants)}, connect: (...args) => process.getBuiltinModule('node:http2').connect(...args) }`;
      return code.replace(eager, lazy);
    },
  },
};

const root = new URL('../', import.meta.url);
const out = new URL('dist/cli/', root);

await rm(new URL('dist/', root), { recursive: true, force: true });
await build({
  input: { main: new URL('src/cli/main.ts', root).pathname },
  platform: 'node',
  logLevel: 'warn',
  plugins: [undiciHttp2OnFirstUse],
  // The plugin's change stays within one line, so the source map's lines still hold.
  checks: { sourcemapBroken: false },
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
