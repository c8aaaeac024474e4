import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { PumpHooks } from './message-pump.ts';

/**
 * Headers of every SSE answer, beside those already set on the reply (`pendingHeaders`: the request
 * id and the rest). No `Connection` header: Node must honour a client's `Connection: close`.
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};

/** One SSE event whose data is already JSON. */
export function sseEvent(name: string, json: string): string {
  return `event: ${name}\ndata: ${json}\n\n`;
}

const KEEP_ALIVE_COMMENT = ': keep-alive\n\n';

/**
 * Headers already set on the reply (request id, rate limits, CORS). After `reply.hijack()` Fastify
 * no longer sends them, so a route that writes its own head passes these along.
 */
export function pendingHeaders(reply: FastifyReply): Record<string, string | number | string[]> {
  const out: Record<string, string | number | string[]> = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) out[name] = value;
  return out;
}

/**
 * An open SSE answer fed from an upstream pump: what one upstream chunk produces goes out in one
 * write (one syscall, not one per event), `: keep-alive` is written after every `keepAliveIntervalMs`
 * of upstream silence, and the upstream is paused while a slow client drains. `first` (e.g. the
 * `start` event) goes out with the headers and the first upstream chunk; whatever the last chunk
 * produced goes out with `end()`, so a short answer costs one or two writes in all.
 *
 * Everything goes through `res.write`, which frames the chunk itself. Writing the framed chunk to
 * the socket directly (version 0.2.0 and before) saved too little to keep, A/B in the same runs (18
 * interleaved rounds, CPU per stream through `res` / to the socket, per-round ratio median
 * [interquartile range]): paced c256 1.04× [0.97–1.11], unpaced c64 1.04× [0.88–1.12], c1 0.96×
 * [0.81–1.07]; it relied on the undocumented `res.chunkedEncoding` and needed a guard against Node
 * 24's corked writes.
 */
export class SseBatch {
  private out: string;
  private readonly res: ServerResponse;
  private readonly keepAlive: NodeJS.Timeout;
  /** Hooks for pumpMessageStream, bound once per answer. */
  readonly hooks: Required<Pick<PumpHooks, 'beforeChunk' | 'afterChunk' | 'clientGone'>>;

  constructor(res: ServerResponse, keepAliveIntervalMs: number, first = '') {
    this.res = res;
    this.out = first;
    this.keepAlive = setInterval(() => {
      this.add(KEEP_ALIVE_COMMENT);
      this.flush(noop);
    }, keepAliveIntervalMs);
    this.keepAlive.unref();
    this.hooks = {
      beforeChunk: () => {
        this.keepAlive.refresh();
      },
      afterChunk: (resume) => this.flush(resume),
      clientGone: () => res.destroyed,
    };
  }

  /** Adds text to what the current chunk will write (an arrow property: it is handed to the framing as it is). */
  readonly add = (text: string): void => {
    this.out += text;
  };

  /** Writes what was added; false when the client is slow (`resume` then runs on `drain`). */
  private flush(resume: () => void): boolean {
    const out = this.out;
    if (out === '') return true;
    this.out = '';
    if (this.res.write(out)) return true;
    this.res.once('drain', resume);
    return false;
  }

  /** Stops the keep-alive and forgets what is pending, the response left as it is (its client has gone). */
  stop(): void {
    clearInterval(this.keepAlive);
    this.out = '';
  }

  /** Stops the keep-alive and ends the answer with what is pending, then `last`. */
  end(last = ''): void {
    clearInterval(this.keepAlive);
    const out = this.out + last;
    this.out = '';
    this.res.end(out);
  }
}

function noop(): void {
  // A keep-alive comment needs no resume: the upstream is silent anyway.
}
