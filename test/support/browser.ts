// Headless Chromium from Debian's `chromium` package (scripts/install-system-tools.sh, `test`
// set), driven by playwright-core. No browser is downloaded: playwright-core is only the driver.
// Each launch gets a fresh profile in the run's temp folder, and the flags keep Chromium from
// reaching any network of its own (updates, sync, QUIC probes), so a page test sees only the
// servers it starts.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const chromiumPath = '/usr/bin/chromium';

const flags = [
  '--headless',
  // Root in a container has no user namespaces for Chromium's sandbox.
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(viewport = { width: 1360, height: 900 }): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'chromium-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: flags,
    viewport,
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
