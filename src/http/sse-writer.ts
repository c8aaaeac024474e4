import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

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
