// node:http's functions, taken from its CommonJS module object. An ES import of node:http
// builds a namespace of every export, and reading the lazy WebSocket, CloseEvent and
// MessageEvent exports for it loads Node's own bundled copy of undici, which then stays
// resident for the life of the process. Types still come from `import type ... 'node:http'`.

const http = process.getBuiltinModule('node:http');

export const { createServer, request, STATUS_CODES } = http;
