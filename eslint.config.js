import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const realTime = [
  { name: 'setTimeout', message: 'Use the injected Clock (src/runtime/clock.ts).' },
  { name: 'setInterval', message: 'Use the injected Clock (src/runtime/clock.ts).' },
];

export default tseslint.config(
  // Generated code (npm run schema) is checked by the tests that compare it with its generator.
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'bench/results/', 'src/**/*.generated.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The admin page's script runs in the browser, as a module served by the admin server.
    files: ['src/admin/page/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: { document: 'readonly', location: 'readonly', URLSearchParams: 'readonly', fetch: 'readonly', Node: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' },
    },
  },
  {
    // Policy cores and the data path take time from the injected Clock so tests can drive it.
    files: ['src/**/*.ts'],
    ignores: ['src/runtime/clock.ts'],
    rules: {
      'no-restricted-globals': ['error', ...realTime],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Use the injected Clock (src/runtime/clock.ts).' },
        { object: 'performance', property: 'now', message: 'Use the injected Clock (src/runtime/clock.ts).' },
      ],
    },
  },
  {
    // Code loaded is resident for good (docs/decisions/0014-memory-budget.md). An ES import of
    // node:http's values loads Node's bundled undici; node:http2, and the entry points of
    // prom-client and ws, load Node's TLS code, which Breakwater needs only for what asks for it.
    files: ['src/**/*.ts'],
    ignores: ['src/runtime/node-http.ts', 'src/**/*.d.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'node:http', allowTypeImports: true, message: 'Import its values from src/runtime/node-http.ts; types may come from node:http.' },
            { name: 'node:http2', allowTypeImports: true, message: "Load it where it is first needed (process.getBuiltinModule('node:http2')); types may come from node:http2." },
            { name: 'prom-client', allowTypeImports: true, message: 'Import its classes from src/telemetry/prom.ts; types may come from prom-client.' },
            { name: 'ws', allowTypeImports: true, message: "Load it with import('ws') where a WebSocket needs it; types may come from ws." },
          ],
        },
      ],
    },
  },
  {
    // Policies emit events; telemetry turns them into metrics, spans and log fields.
    files: ['src/policies/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['prom-client', 'pino', '@opentelemetry/*', 'node:http', 'undici'] }],
    },
  },
);
