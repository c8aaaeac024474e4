import { ConnectorError } from '../errors.ts';
import { header, serverRetryAfterMs, type HeaderBag } from './retry.ts';

/** Extracts `error.message` from an Anthropic error body, if it is one. */
export function upstreamMessage(body: Buffer | string): string | undefined {
  try {
    const parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as {
      error?: { message?: unknown };
    };
    const message = parsed.error?.message;
    return typeof message === 'string' ? message.slice(0, 2000) : undefined;
  } catch {
    return undefined;
  }
}

/** Whole seconds for our `Retry-After`: the upstream's value when it gave one, else `fallbackSeconds`. */
function retryAfterSeconds(headers: HeaderBag, fallbackSeconds: number): string {
  const ms = serverRetryAfterMs(headers);
  if (ms !== undefined) return String(Math.max(1, Math.ceil(ms / 1000)));
  const raw = header(headers, 'retry-after');
  if (raw !== undefined && /^\d+$/.test(raw.trim())) return raw.trim();
  return String(fallbackSeconds);
}

/**
 * Maps a final (non-2xx, retries spent) upstream answer to the service's honest error:
 * the client's own mistakes stay 400, the service's credentials become 502, throttling 429,
 * upstream trouble 503, and anything else 502.
 */
export function mapUpstreamStatus(status: number, headers: HeaderBag, body: Buffer | string): ConnectorError {
  const message = upstreamMessage(body);
  const opts = { upstreamStatus: status };
  if (status === 400 || status === 404 || status === 422) {
    return new ConnectorError(
      'invalid_request_error',
      400,
      message ?? `Upstream rejected the request (${status})`,
      opts,
    );
  }
  if (status === 413) {
    return new ConnectorError(
      'request_too_large',
      413,
      message ?? 'Upstream says the request is too large',
      opts,
    );
  }
  if (status === 401 || status === 403) {
    return new ConnectorError(
      'upstream_authentication_error',
      502,
      `The upstream rejected this service's credentials (${status}); the operator must check ANTHROPIC_API_KEY`,
      opts,
    );
  }
  if (status === 429) {
    return new ConnectorError('rate_limit_error', 429, message ?? 'Upstream rate limit reached', {
      ...opts,
      retryAfter: retryAfterSeconds(headers, 5),
    });
  }
  if (status === 408 || status === 504) {
    return new ConnectorError('upstream_timeout', 504, message ?? `Upstream timed out (${status})`, opts);
  }
  if (status === 409 || status >= 500) {
    return new ConnectorError('overloaded_error', 503, message ?? `Upstream unavailable (${status})`, {
      ...opts,
      retryAfter: retryAfterSeconds(headers, 5),
    });
  }
  return new ConnectorError(
    'upstream_error',
    502,
    message ?? `Upstream answered with unexpected status ${status}`,
    opts,
  );
}
