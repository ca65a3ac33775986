// The admin page: a few static files (src/admin/page/) that the admin server serves itself, so
// the page works with no network beyond the port-forward and no build step at run time. The
// page reads the same JSON endpoints as scripts do and sends the same POSTs.

import { readFile } from 'node:fs/promises';

export interface PageFile {
  readonly type: string;
  readonly body: Buffer;
}

// URL path → file name in the page folder. Assets live under /page/ so that they can never
// shadow an API endpoint.
const files: readonly (readonly [path: string, file: string, type: string])[] = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/page/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/page/style.css', 'style.css', 'text/css; charset=utf-8'],
];

/**
 * What a browser may do with the page: run its own script, call its own origin, and nothing
 * else; no other site may frame it, so its buttons cannot be clicked through a disguise.
 */
export const pageHeaders: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // A restarted sidecar may run a newer version: never keep an old page.
  'cache-control': 'no-store',
};

/**
 * Reads the page's files once, at start. They sit beside this module: in src/admin/page/ in a
 * checkout, in dist/cli/page/ beside the bundle in the package (`npm run build` copies them).
 */
export async function loadPage(folder: URL = new URL('./page/', import.meta.url)): Promise<Map<string, PageFile>> {
  const page = new Map<string, PageFile>();
  for (const [path, file, type] of files) {
    page.set(path, { type, body: await readFile(new URL(file, folder)) });
  }
  return page;
}
