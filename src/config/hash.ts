import { createHash } from 'node:crypto';

/** A short hash of a config file's text: breakwater_config_info's label, and how reloads tell a change. */
export function configHash(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
