/**
 * Pure: a bound on how deeply a JSON text nests objects and arrays, checked before anything walks it
 * recursively. V8's JSON.parse copes with any depth, but JSON.stringify, schema validation and the
 * translations overflow the stack at a few thousand levels (a 500 instead of a 400). No request
 * needs more than a few dozen levels: a tool's input schema nested 30 deep is already unusual.
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** Index of the quote that closes the string opened at `open` (text.length if none). */
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  while (at !== -1) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return text.length;
}

/**
 * True when valid JSON `text` nests objects and arrays more than `max` levels deep (the outermost
 * object is level 1). One pass over the text; strings are skipped with indexOf, so their length
 * costs almost nothing. On text that is not JSON the answer means nothing: parse it too.
 */
export function nestsDeeperThan(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = closingQuote(text, i);
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return false;
}

interface Frame {
  value: object;
  depth: number;
  key: string | number | undefined;
  parent: Frame | undefined;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
/** Segments of a path shown before "…": enough to name the field, short enough for a message. */
const SHOWN_SEGMENTS = 8;

function segment(key: string | number, first: boolean): string {
  if (typeof key === 'number') return `[${key}]`;
  if (IDENTIFIER.test(key) && key.length <= 40) return first ? key : `.${key}`;
  return `[${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}]`;
}

function pathOf(frame: Frame): string {
  const keys: (string | number)[] = [];
  for (let f: Frame | undefined = frame; f?.key !== undefined; f = f.parent) keys.push(f.key);
  keys.reverse();
  const shown = keys.slice(0, SHOWN_SEGMENTS).map((key, i) => segment(key, i === 0));
  return shown.join('') + (keys.length > SHOWN_SEGMENTS ? '…' : '');
}

/**
 * The path of the first object or array (in document order) nested more than `max` levels deep in
 * a parsed value, e.g. `tools[0].function.parameters.properties.a…`; undefined if there is none.
 * Iterative, so any depth is safe; meant for the rare body that `nestsDeeperThan` flagged.
 */
export function tooDeepPath(root: unknown, max = MAX_JSON_DEPTH): string | undefined {
  if (typeof root !== 'object' || root === null) return undefined;
  const stack: Frame[] = [{ value: root, depth: 1, key: undefined, parent: undefined }];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    if (frame.depth > max) return pathOf(frame) || '(the body)';
    const entries: [string | number, unknown][] = Array.isArray(frame.value)
      ? frame.value.map((v, i) => [i, v])
      : Object.entries(frame.value);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, value] = entries[i] ?? [];
      if (key !== undefined && typeof value === 'object' && value !== null)
        stack.push({ value, depth: frame.depth + 1, key, parent: frame });
    }
  }
  return undefined;
}
