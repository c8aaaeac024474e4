/**
 * Fast path for the hottest event of a stream: a compact `content_block_delta` carrying a
 * `text_delta`. Returns the JSON string literal of the text (quotes included) straight from the
 * event's data, without parsing the event or re-encoding the text: the literal can be embedded in our
 * own JSON as it is, and decodes to exactly the same text. Returns null for any other shape (spaced
 * JSON, other delta types, extra fields, invalid escapes or raw control characters), so the caller
 * falls back to JSON.parse.
 *
 * One regular expression (compiled to machine code by V8) checks the shape and every character of the
 * literal: ~65 ns per typical delta against ~290 ns for the same checks as a JavaScript loop. Its
 * alternatives never overlap, so it runs in linear time; data longer than MAX_LENGTH goes to
 * JSON.parse instead, which keeps the expression's backtracking stack small (a multi-megabyte literal
 * would overflow it) and costs nothing extra at that size.
 */
const TEXT_DELTA =
  // eslint-disable-next-line no-control-regex -- raw control characters are what the literal must not hold
  /^\{"type":"content_block_delta","index":\d+,"delta":\{"type":"text_delta","text":("(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")\}\}$/;

/** Longer event data is left to JSON.parse (see above). */
export const MAX_LENGTH = 16 * 1024;

export function textDeltaLiteral(data: string): string | null {
  if (data.length > MAX_LENGTH) return null;
  return TEXT_DELTA.exec(data)?.[1] ?? null;
}
