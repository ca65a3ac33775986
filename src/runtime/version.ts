import { readFileSync } from 'node:fs';

// package.json sits two levels up both from src/runtime/ and from the bundle in dist/cli/.
const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Breakwater's version, as package.json gives it. */
export const breakwaterVersion: string = packageJson.version;
