import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { PumpHooks } from './message-pump.ts';

/** Headers of every SSE answer. No `Connection` header: Node must honour a client's `Connection: close`. */
export function sseHeaders(requestId: string): Record<string, string> {
  return {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
    'x-request-id': requestId,
  };
}

/** One SSE event whose data is already JSON. */
export function sseEvent(name: string, json: string): string {
  return `event: ${name}\ndata: ${json}\n\n`;
}

export const KEEP_ALIVE_COMMENT = ': keep-alive\n\n';

/**
 * Writes `: keep-alive` after every `intervalMs` of silence. `touch()` (cheap: one timer refresh)
 * restarts the count; `stop()` clears it.
 */
export class KeepAlive {
  private readonly timer: NodeJS.Timeout;

  constructor(res: ServerResponse, intervalMs: number) {
    this.timer = setInterval(() => res.write(KEEP_ALIVE_COMMENT), intervalMs);
    this.timer.unref();
  }

  touch(): void {
    this.timer.refresh();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

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
 * write (one syscall, not one per event), `: keep-alive` is written during upstream silence, and
 * the upstream is paused while a slow client drains.
 */
export class SseBatch {
  private out = '';
  private readonly res: ServerResponse;
  private readonly keepAlive: KeepAlive;
  /** Hooks for pumpMessageStream, bound once per answer. */
  readonly hooks: Required<Pick<PumpHooks, 'beforeChunk' | 'afterChunk' | 'clientGone'>>;

  constructor(res: ServerResponse, keepAliveIntervalMs: number) {
    this.res = res;
    this.keepAlive = new KeepAlive(res, keepAliveIntervalMs);
    this.hooks = {
      beforeChunk: () => {
        this.keepAlive.touch();
      },
      afterChunk: (resume) => this.flush(resume),
      clientGone: () => res.destroyed,
    };
  }

  add(text: string): void {
    this.out += text;
  }

  /** Writes what was added; false when the client is slow (`resume` then runs on `drain`). */
  private flush(resume: () => void): boolean {
    if (this.out === '') return true;
    const flushed = this.res.write(this.out);
    this.out = '';
    if (flushed) return true;
    this.res.once('drain', resume);
    return false;
  }

  /** Stops the keep-alive and ends the answer with `last`. */
  end(last = ''): void {
    this.keepAlive.stop();
    this.res.end(last);
  }
}
