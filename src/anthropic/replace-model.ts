/**
 * Pure: a client's JSON request body with the value of its top-level `"model"` replaced and every
 * other byte left as it was (used by the passthrough route when a fallback model is asked for).
 *
 * The body must already be known to be valid JSON. Scanning bytes is safe: JSON's structural
 * characters are ASCII, and every byte of a multi-byte UTF-8 sequence is >= 0x80.
 */
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const BOM = [0xef, 0xbb, 0xbf];

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function skipSpace(b: Buffer, i: number): number {
  while (isSpace(b[i])) i++;
  return i;
}

/** `i` is at an opening quote; returns the index after the closing one. */
function skipString(b: Buffer, i: number): number {
  let j = i + 1;
  while (j < b.length && b[j] !== QUOTE) j += b[j] === BACKSLASH ? 2 : 1;
  return j + 1;
}

/** `i` is at the first byte of a value; returns the index after it. */
function skipValue(b: Buffer, i: number): number {
  const first = b[i];
  if (first === QUOTE) return skipString(b, i);
  if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
    let depth = 0;
    let j = i;
    while (j < b.length) {
      const byte = b[j];
      if (byte === QUOTE) {
        j = skipString(b, j);
        continue;
      }
      if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) depth++;
      else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) depth--;
      j++;
      if (depth === 0) return j;
    }
    return j;
  }
  let j = i;
  while (j < b.length && b[j] !== COMMA && b[j] !== CLOSE_OBJECT && b[j] !== CLOSE_ARRAY && !isSpace(b[j]))
    j++;
  return j;
}

/** Where the string values of the top-level `"model"` members are: [start, end) byte ranges. */
export function modelValueSpans(b: Buffer): [number, number][] {
  const spans: [number, number][] = [];
  let i = BOM.every((byte, k) => b[k] === byte) ? BOM.length : 0;
  i = skipSpace(b, i);
  if (b[i] !== OPEN_OBJECT) return spans;
  i = skipSpace(b, i + 1);
  while (i < b.length && b[i] === QUOTE) {
    const keyEnd = skipString(b, i);
    const key = JSON.parse(b.toString('utf8', i, keyEnd)) as string;
    i = skipSpace(b, keyEnd);
    if (b[i] !== COLON) return [];
    const start = skipSpace(b, i + 1);
    const end = skipValue(b, start);
    if (key === 'model' && b[start] === QUOTE) spans.push([start, end]);
    i = skipSpace(b, end);
    if (b[i] === COMMA) i = skipSpace(b, i + 1);
  }
  return spans;
}

/** `body` asking for `model`; undefined when it has no top-level string `"model"` to replace. */
export function replaceModel(body: Buffer, model: string): Buffer | undefined {
  const spans = modelValueSpans(body);
  if (spans.length === 0) return undefined;
  const value = Buffer.from(JSON.stringify(model));
  const parts: Buffer[] = [];
  let from = 0;
  for (const [start, end] of spans) {
    parts.push(body.subarray(from, start), value);
    from = end;
  }
  parts.push(body.subarray(from));
  return Buffer.concat(parts);
}
