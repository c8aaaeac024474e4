/**
 * Fast path for the hottest event of a stream: a compact `content_block_delta` carrying a
 * `text_delta`. Returns the JSON string literal of the text (quotes included) straight from the
 * event's data, without parsing the event or re-encoding the text: the literal can be embedded in our
 * own JSON as it is, and decodes to exactly the same text. Returns null for any other shape (spaced
 * JSON, other delta types, extra fields), so the caller falls back to JSON.parse.
 */
const PREFIX = '{"type":"content_block_delta","index":';
const TEXT_DELTA = ',"delta":{"type":"text_delta","text":"';
const SUFFIX = '"}}';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** Length of the valid JSON escape starting at `i` (the backslash), or 0 if it is not one. */
function escapeLength(data: string, i: number): number {
  switch (data.charCodeAt(i + 1)) {
    case QUOTE:
    case BACKSLASH:
    case 0x2f: // /
    case 0x62: // b
    case 0x66: // f
    case 0x6e: // n
    case 0x72: // r
    case 0x74: // t
      return 2;
    case 0x75: // u
      return isHex(data.charCodeAt(i + 2)) && isHex(data.charCodeAt(i + 3)) && isHex(data.charCodeAt(i + 4)) && isHex(data.charCodeAt(i + 5)) ? 6 : 0;
    default:
      return 0;
  }
}

export function textDeltaLiteral(data: string): string | null {
  if (!data.startsWith(PREFIX) || !data.endsWith(SUFFIX)) return null;
  let i = PREFIX.length;
  if (!isDigit(data.charCodeAt(i))) return null;
  while (isDigit(data.charCodeAt(i))) i++;
  if (!data.startsWith(TEXT_DELTA, i)) return null;
  const open = i + TEXT_DELTA.length - 1;
  const close = data.length - SUFFIX.length; // index of the literal's closing quote
  if (close <= open) return null;
  for (let j = open + 1; j < close; ) {
    const c = data.charCodeAt(j);
    if (c === BACKSLASH) {
      const length = escapeLength(data, j);
      if (length === 0) return null;
      j += length;
      if (j > close) return null;
      continue;
    }
    if (c === QUOTE || c < 0x20) return null;
    j++;
  }
  return data.slice(open, close + 1);
}
