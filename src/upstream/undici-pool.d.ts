// undici's Pool, imported from its own module: undici's entry point loads every client the
// package has (fetch, WebSocket, EventSource, the cache, proxy and mock agents), and all of it
// would stay resident in a sidecar that uses only Pool (docs/decisions/0014-memory-budget.md).
// The module is undici's, at the version package.json pins.
declare module 'undici/lib/dispatcher/pool.js' {
  import { Pool } from 'undici';
  export default Pool;
}
