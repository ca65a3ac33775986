// `${VAR}` and `${VAR:-default}` in the config values that may hold credentials or
// machine-specific paths (the stores' connection values), so that a password can come from a
// Kubernetes Secret through the environment and never be written in the file.

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export type Expansion = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly missing: readonly string[] };

/**
 * Replaces each `${NAME}` with the variable's value, and each `${NAME:-fallback}` with the
 * value or, when the variable is unset or empty, the fallback (as in the shell). Text without
 * a reference comes back unchanged; a `$` not followed by `{NAME...}` is kept as it is.
 */
export function expandEnv(text: string, env: Readonly<Record<string, string | undefined>>): Expansion {
  const missing: string[] = [];
  const value = text.replace(REFERENCE, (_reference, name: string, fallback: string | undefined) => {
    const found = env[name];
    if (fallback !== undefined) return found === undefined || found === '' ? fallback : found;
    if (found === undefined) missing.push(name);
    return found ?? '';
  });
  return missing.length === 0 ? { ok: true, value } : { ok: false, missing };
}
