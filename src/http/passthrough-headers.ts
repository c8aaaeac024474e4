import type { IncomingHttpHeaders } from 'node:http';
import { ANTHROPIC_VERSION } from '../upstream/anthropic-client.ts';
import type { HeaderBag } from '../upstream/retry.ts';

/** Headers a client may send upstream: the API version and beta flags. Never its own credentials. */
export function forwardedRequestHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const version = headers['anthropic-version'];
  const beta = headers['anthropic-beta'];
  const out: Record<string, string> = {
    'anthropic-version': typeof version === 'string' ? version : ANTHROPIC_VERSION,
  };
  if (typeof beta === 'string') out['anthropic-beta'] = beta;
  else if (Array.isArray(beta)) out['anthropic-beta'] = beta.join(',');
  return out;
}

const PASSED_BACK = new Set([
  'content-type',
  'request-id',
  'retry-after',
  'retry-after-ms',
  'x-should-retry',
]);

/** Upstream headers that come back to the client: content type, request id, retry hints, rate-limit state. */
export function pickUpstreamHeaders(headers: HeaderBag): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (PASSED_BACK.has(name) || name.startsWith('anthropic-ratelimit-'))
      out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/**
 * Once the service has retried, an SDK in front must not retry again (3 × 3 calls is how retry
 * storms start): its error answer then says `x-should-retry: false`.
 */
export function retriedHeader(attempts: number): Record<string, string> {
  return attempts > 1 ? { 'x-should-retry': 'false' } : {};
}
