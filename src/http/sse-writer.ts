import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
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
 * Writes the head of an SSE answer (status 200, the reply's pending headers, `SSE_HEADERS`, then
 * `extra`) and says whether its body is chunked by construction: to an HTTP/1.1 client the head says
 * `Transfer-Encoding: chunked` itself, so the chunk framing is known, not guessed from Node's state.
 * An HTTP/1.0 client gets the bytes unframed and the connection closed at the end, as Node does.
 */
export function writeSseHead(reply: FastifyReply, extra?: Record<string, string>): boolean {
  const req: IncomingMessage = reply.raw.req;
  const chunked = req.httpVersionMajor === 1 && req.httpVersionMinor >= 1; // node:http serves HTTP/1.x only
  reply.raw.writeHead(200, {
    ...pendingHeaders(reply),
    ...SSE_HEADERS,
    ...extra,
    ...(chunked ? CHUNKED : undefined),
  });
  return chunked;
}

const CHUNKED = { 'transfer-encoding': 'chunked' } as const;

/**
 * An open SSE answer fed from an upstream pump: what the upstream chunks of one socket read produce
 * goes out in one write, at the end of that tick (one syscall, not one per event or per chunk: a busy
 * service reads several chunks at once; at 256 paced streams that halved the writes), `: keep-alive`
 * is written after every `keepAliveIntervalMs` of upstream silence, and the upstream is paused while a
 * slow client drains. `first` (e.g. the `start` event) goes out with the head and the first upstream
 * chunk; whatever the last chunk produced goes out with `end()`, so a short answer costs one or two
 * writes in all.
 *
 * The head and the first chunk go through `res.write`, and so does the end; the chunks between are
 * framed here and written to the socket as one string each. Through `res.write` every chunk is four
 * writes to a corked socket (size line, CRLF, data, CRLF), uncorked on the next tick and sent with
 * `writev`: a paced stream (64 chunks of one event, 1,024 streams at c256) allocated 279 KB against
 * 200 KB written here, by V8's GC trace, whose counts repeat within a few per cent where CPU time on a
 * shared machine does not (bench/README.md, "The request path in 0.3.1"). The framing is known by
 * construction (`writeSseHead` says `Transfer-Encoding: chunked` itself: `chunked`); the socket is
 * written only while the response owns it and holds nothing back: not before its head is out, not for
 * a pipelined answer still waiting for its turn (no socket yet), not while the response is corked
 * (Node 24 holds a response's writes until the end of the tick; bytes written to the socket meanwhile
 * would overtake them).
 */
export class SseBatch {
  private out: string;
  private headSent = false;
  private readonly res: ServerResponse;
  private readonly chunked: boolean;
  private readonly keepAlive: NodeJS.Timeout;
  /** Hooks for pumpMessageStream, bound once per answer. */
  readonly hooks: Required<Pick<PumpHooks, 'beforeChunk' | 'afterChunk' | 'clientGone'>>;

  /** `chunked`: what `writeSseHead` said of the head. */
  constructor(res: ServerResponse, chunked: boolean, keepAliveIntervalMs: number, first = '') {
    this.res = res;
    this.chunked = chunked;
    this.out = first;
    this.keepAlive = setInterval(() => {
      // A client that is not reading needs no keep-alive (and gets nothing more until its drain).
      if (this.slow) return;
      this.add(KEEP_ALIVE_COMMENT);
      void this.flush();
    }, keepAliveIntervalMs);
    this.keepAlive.unref();
    this.hooks = {
      beforeChunk: () => {
        this.keepAlive.refresh();
      },
      afterChunk: (resume) => {
        if (this.slow) {
          this.resumes.push(resume);
          return false;
        }
        if (!this.flushQueued) {
          this.flushQueued = true;
          process.nextTick(this.queuedFlush);
        }
        return true;
      },
      clientGone: () => res.destroyed,
    };
  }

  /** Adds text to what this tick's write will carry (an arrow property: it is handed to the framing as it is). */
  readonly add = (text: string): void => {
    this.out += text;
  };

  /** True from a write that the client could not take at once until its `drain`. */
  private slow = false;
  /** The pump's resumes, paused while the client was slow. */
  private resumes: (() => void)[] = [];
  private flushQueued = false;
  private readonly queuedFlush = (): void => {
    this.flushQueued = false;
    void this.flush();
  };
  private readonly drained = (): void => {
    this.slow = false;
    // What was added while the client was slow, then the pump, unless that was too much again.
    if (!this.flush()) return;
    const resumes = this.resumes;
    this.resumes = [];
    for (const resume of resumes) resume();
  };

  /**
   * Writes what was added; false when the client could not take it at once (the pump then pauses
   * at its next chunk, until the client's `drain`).
   */
  private flush(): boolean {
    const out = this.out;
    if (out === '') return true;
    this.out = '';
    const socket = this.ownSocket();
    if (socket === null) {
      this.headSent = true;
      return this.res.write(out) || this.waitForDrain(this.res);
    }
    return socket.write(`${Buffer.byteLength(out).toString(16)}\r\n${out}\r\n`) || this.waitForDrain(socket);
  }

  private waitForDrain(stream: ServerResponse | Socket): false {
    if (!this.slow) {
      this.slow = true;
      stream.once('drain', this.drained);
    }
    return false;
  }

  /** The socket, when a chunk may be written to it directly (see the class); else null. */
  private ownSocket(): Socket | null {
    const { res } = this;
    if (!this.chunked || !this.headSent || res.writableEnded || res.writableCorked !== 0) return null;
    const socket = res.socket;
    return socket === null || socket.destroyed ? null : socket;
  }

  /** Stops the keep-alive and forgets what is pending, the response left as it is (its client has gone). */
  stop(): void {
    clearInterval(this.keepAlive);
    this.out = '';
    this.resumes = [];
  }

  /** Stops the keep-alive and ends the answer with what is pending, then `last`. */
  end(last = ''): void {
    clearInterval(this.keepAlive);
    this.resumes = [];
    const out = this.out + last;
    this.out = '';
    this.res.end(out);
  }
}
