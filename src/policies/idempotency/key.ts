// The Idempotency-Key header as the IETF draft defines it: one Structured Field string
// (`"a1b2"`), which many clients send bare (`a1b2`); both name the same key.

/** Stripe's limit: long enough for a UUID with a prefix, short enough to index. */
export const maxKeyLength = 255;

export type ParsedKey =
  | { readonly kind: 'absent' }
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'invalid'; readonly why: string };

const absent: ParsedKey = { kind: 'absent' };

/**
 * The content of an sf-string (RFC 8941 section 3.3.3): printable ASCII between double quotes,
 * with `\"` and `\\` the only escapes; parameters after it (`;a=1`) are ignored. Undefined when
 * the text is not one.
 */
export function parseSfString(text: string): string | undefined {
  if (!text.startsWith('"')) return undefined;
  let content = '';
  for (let i = 1; i < text.length; i++) {
    const char = text[i]!;
    const code = char.charCodeAt(0);
    if (char === '\\') {
      const next = text[i + 1];
      if (next !== '"' && next !== '\\') return undefined;
      content += next;
      i++;
    } else if (char === '"') {
      const rest = text.slice(i + 1);
      return rest === '' || rest.startsWith(';') ? content : undefined;
    } else if (code < 0x20 || code > 0x7e) {
      return undefined;
    } else {
      content += char;
    }
  }
  return undefined;
}

/** The key a request's header value names, or why it names none. */
export function parseIdempotencyKey(value: string | string[] | undefined): ParsedKey {
  if (value === undefined) return absent;
  if (Array.isArray(value)) {
    if (value.length === 0) return absent;
    if (value.length > 1) return { kind: 'invalid', why: 'the request carries more than one idempotency key header' };
    return parseIdempotencyKey(value[0]);
  }
  const text = value.trim();
  if (text === '') return { kind: 'invalid', why: 'the idempotency key is empty' };
  const key = text.startsWith('"') ? parseSfString(text) : text;
  if (key === undefined) return { kind: 'invalid', why: 'the idempotency key is not a valid quoted string' };
  if (key === '') return { kind: 'invalid', why: 'the idempotency key is empty' };
  if (key.length > maxKeyLength) return { kind: 'invalid', why: `the idempotency key is longer than ${maxKeyLength} characters` };
  return { kind: 'key', key };
}
