/**
 * An incremental Server-Sent Events decoder over bytes, following the WHATWG event-stream rules:
 * lines end in CRLF, LF or CR; `:` starts a comment; `data` lines are joined with `\n`; a blank line
 * dispatches the event (only if it had data). Chunks may split anywhere, even inside a UTF-8 sequence
 * or between CR and LF. No I/O; one callback per event, no per-event objects.
 */
export type SseEventHandler = (event: string, data: string) => void;

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

const DATA = [0x64, 0x61, 0x74, 0x61];
const EVENT = [0x65, 0x76, 0x65, 0x6e, 0x74];

function isField(buf: Buffer, start: number, name: readonly number[]): boolean {
  for (let i = 0; i < name.length; i++) if (buf[start + i] !== name[i]) return false;
  return true;
}

function sameBytes(buf: Buffer, start: number, bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (buf[start + i] !== bytes[i]) return false;
  return true;
}

/**
 * The event names seen so far on a stream (a handful: message_start, content_block_delta, ...):
 * a repeated name is the same string again, found by comparing bytes, not a new string per event
 * (and equal strings that are the same object compare in one step in the reader's switch).
 */
class EventNames {
  private readonly seen: { bytes: Buffer; name: string }[] = [];

  get(buf: Buffer, start: number, end: number): string {
    const length = end - start;
    for (const entry of this.seen) {
      if (entry.bytes.length === length && sameBytes(buf, start, entry.bytes)) return entry.name;
    }
    const name = length <= 0 ? '' : buf.toString('utf8', start, end);
    if (this.seen.length < 16) this.seen.push({ bytes: Buffer.from(name, 'utf8'), name });
    return name;
  }
}

/** Thrown when one line grows beyond `maxLineBytes`: the stream is not SSE we can trust. */
export class SseLineTooLongError extends Error {
  override readonly name = 'SseLineTooLongError';
}

export class SseDecoder {
  private pending: Buffer | null = null;
  private skipLeadingLf = false;
  private atStart = true;
  private eventName = '';
  private data: string | null = null;
  private readonly names = new EventNames();

  private readonly onEvent: SseEventHandler;
  private readonly maxLineBytes: number;

  constructor(onEvent: SseEventHandler, maxLineBytes = 16 * 1024 * 1024) {
    this.onEvent = onEvent;
    this.maxLineBytes = maxLineBytes;
  }

  push(chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let start = 0;
    if (this.atStart) {
      if (buf.length < BOM.length && BOM.subarray(0, buf.length).equals(buf)) {
        this.pending = buf;
        return;
      }
      this.atStart = false;
      if (buf.subarray(0, BOM.length).equals(BOM)) start = BOM.length;
    }
    if (this.skipLeadingLf && buf.length > start) {
      this.skipLeadingLf = false;
      if (buf[start] === LF) start++;
    }
    const len = buf.length;
    let cr = buf.indexOf(CR, start);
    while (start < len) {
      if (cr !== -1 && cr < start) cr = buf.indexOf(CR, start);
      const lf = buf.indexOf(LF, start);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        end = cr;
        next = cr + 1;
        if (next === len) this.skipLeadingLf = true;
        else if (buf[next] === LF) next++;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.line(buf, start, end);
      start = next;
    }
    if (start < len) {
      if (len - start > this.maxLineBytes) throw new SseLineTooLongError(`SSE line longer than ${this.maxLineBytes} bytes`);
      buf = buf.subarray(start);
      this.pending = buf;
    }
  }

  /** True when no partial line or undispatched event is left (the stream ended on an event boundary). */
  get idle(): boolean {
    return this.pending === null && this.data === null;
  }

  private line(buf: Buffer, start: number, end: number): void {
    if (start === end) {
      this.dispatch();
      return;
    }
    if (buf[start] === COLON) return;
    let colon = buf.indexOf(COLON, start);
    if (colon === -1 || colon > end) colon = end;
    let valueStart = colon + 1;
    if (valueStart < end && buf[valueStart] === SPACE) valueStart++;
    const fieldLength = colon - start;
    if (fieldLength === 4 && isField(buf, start, DATA)) {
      const value = valueStart >= end ? '' : buf.toString('utf8', valueStart, end);
      this.data = this.data === null ? value : `${this.data}\n${value}`;
    } else if (fieldLength === 5 && isField(buf, start, EVENT)) {
      this.eventName = this.names.get(buf, valueStart, end);
    }
    // `id` and `retry` have no meaning for a relay; other fields are ignored per the spec.
  }

  private dispatch(): void {
    const data = this.data;
    const name = this.eventName === '' ? 'message' : this.eventName;
    this.data = null;
    this.eventName = '';
    if (data !== null) this.onEvent(name, data);
  }
}
