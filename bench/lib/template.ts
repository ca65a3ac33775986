// Fills @NAME@ placeholders in the peer configurations under bench/peers/.

/** Replaces every @NAME@; a placeholder without a value is an error, never left in place. */
export function renderTemplate(text: string, values: Readonly<Record<string, string | number>>): string {
  return text.replace(/@([A-Z][A-Z0-9_]*)@/g, (placeholder, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for ${placeholder}`);
    return String(value);
  });
}
