/**
 * Plays pre-serialised SSE frames onto a response: pacing between deltas, chunking (one write per
 * event, 1-3 bytes at a time, or everything coalesced) and the stream fault modes.
 */
import type { ServerResponse } from 'node:http';
import type { Frame } from './message-render.ts';
import type { Pacer } from './pacer.ts';
import type { MessageScenario } from './types.ts';
import { ERROR_MESSAGES, errorBody, sse } from './wire.ts';
import type { Serialize } from './wire.ts';

type Fault = NonNullable<MessageScenario['fault']>;
type Chunking = NonNullable<MessageScenario['chunking']>;

const BAD_JSON_EVENT =
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"unterminated\n\n';

/** End the connection without the chunked terminator, after the bytes already written are flushed. */
function cutSocket(res: ServerResponse): void {
  const socket = res.socket;
  if (socket === null) {
    res.destroy();
    return;
  }
  // Node 24 keeps a response's writes until the end of the tick (res.cork()): hand them to the
  // socket first, or ending the socket now would drop them.
  while (res.writableCorked > 0) res.uncork();
  socket.end(() => socket.destroy());
}

interface PlayConfig {
  delayMs: number;
  fault: Fault | undefined;
  chunking: Chunking;
  ser: Serialize;
}

/**
 * Writes the frames in order. A fault fires just before the (afterDeltas+1)-th delta, or before
 * message_delta when there are fewer deltas.
 */
export class SsePlayer {
  private index = 0;
  private deltas = 0;
  private waited = false;
  private pending = '';
  private pieceSeq = 0;
  private readonly res: ServerResponse;
  private readonly frames: readonly Frame[];
  private readonly cfg: PlayConfig;
  private readonly pacer: Pacer;

  constructor(res: ServerResponse, frames: readonly Frame[], cfg: PlayConfig, pacer: Pacer) {
    this.res = res;
    this.frames = frames;
    this.cfg = cfg;
    this.pacer = pacer;
  }

  readonly run = (): void => {
    const { cfg } = this;
    while (!this.pacer.stopped) {
      const frame = this.frames[this.index];
      if (frame === undefined) {
        this.flush();
        this.res.end();
        return;
      }
      if (frame.kind !== 'other' && cfg.fault !== undefined && this.deltas >= cfg.fault.afterDeltas) {
        this.fault(cfg.fault);
        return;
      }
      if (frame.kind === 'delta' && cfg.delayMs > 0 && !this.waited) {
        this.waited = true;
        this.pacer.after(cfg.delayMs, this.run);
        return;
      }
      this.waited = false;
      this.index++;
      if (frame.kind === 'delta') this.deltas++;
      if (cfg.chunking === 'byte') {
        this.writeBytes(Buffer.from(frame.text), 0);
        return;
      }
      if (cfg.chunking === 'coalesce') this.pending += frame.text;
      else this.res.write(frame.text);
    }
  };

  /** Writes 1-3 bytes at a time (splitting UTF-8 sequences too), yielding to the loop in between. */
  private writeBytes(buf: Buffer, offset: number): void {
    const end = offset + (this.pieceSeq++ % 3) + 1;
    this.res.write(buf.subarray(offset, end));
    if (end < buf.length) {
      this.pacer.after(0, () => {
        this.writeBytes(buf, end);
      });
    } else {
      this.pacer.after(0, this.run);
    }
  }

  private flush(): void {
    if (this.pending === '') return;
    this.res.write(this.pending);
    this.pending = '';
  }

  private fault(f: Fault): void {
    this.flush();
    switch (f.type) {
      case 'stall':
        return;
      case 'error': {
        const type = f.errorType ?? 'overloaded_error';
        const message = f.message ?? ERROR_MESSAGES[type] ?? 'Upstream error';
        this.res.end(sse('error', this.cfg.ser(errorBody(type, message))));
        return;
      }
      case 'truncate':
        this.res.end();
        return;
      case 'cut':
        cutSocket(this.res);
        return;
      case 'badJson':
        this.res.write(BAD_JSON_EVENT);
        return;
    }
  }
}
