import type { ServerResponse } from 'node:http';
import { Cancel } from '../cancel.ts';

/**
 * Cancelled when the response closes before it has finished, i.e. the client went away: mid-stream,
 * before the first byte, or during a retry wait. Tied to the response, not to `request.signal` (which
 * Fastify aborts early for POST bodies on some versions).
 */
export function cancelOnClientClose(res: ServerResponse): Cancel {
  const cancel = new Cancel();
  res.on('close', () => {
    if (!res.writableFinished) cancel.abort();
  });
  return cancel;
}
