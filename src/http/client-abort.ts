import type { ServerResponse } from 'node:http';

/**
 * One AbortSignal per request that fires when the response closes before it has finished, i.e. the
 * client went away: mid-stream, before the first byte, or during a retry wait. Tied to the response,
 * not to `request.signal` (which Fastify aborts early for POST bodies on some versions).
 */
export function abortOnClientClose(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
