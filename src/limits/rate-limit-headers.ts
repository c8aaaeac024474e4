import type { LimitState } from './limit-store.ts';

/**
 * The limit a response reports. Denied: the failing limit that frees up last (retrying sooner is
 * pointless). Allowed: the rate or budget closest to running out; concurrent streams are not a
 * quota over time and are reported only when they are what denied the request.
 */
export function reportedLimit(states: readonly LimitState[]): LimitState | undefined {
  let pick: LimitState | undefined;
  const denied = states.filter((state) => state.retryAfterMs > 0);
  if (denied.length > 0) {
    for (const state of denied)
      if (pick === undefined || state.retryAfterMs > pick.retryAfterMs) pick = state;
    return pick;
  }
  for (const state of states) {
    if (state.name === 'streams') continue;
    if (pick === undefined || state.remaining / state.limit < pick.remaining / pick.limit) pick = state;
  }
  return pick;
}

const NANO_PER_CENT = 10_000_000;

function seconds(ms: number): string {
  return String(Math.max(0, Math.ceil(ms / 1000)));
}

/**
 * `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds; IETF httpapi
 * ratelimit-headers draft) for the reported limit, and `Retry-After` (seconds) when it denied.
 */
export function rateLimitHeaders(states: readonly LimitState[]): Record<string, string> {
  const state = reportedLimit(states);
  if (state === undefined) return {};
  // Dollar budgets (counted in nano-dollars) are reported in whole cents.
  const unit = state.name === 'usd_daily' || state.name === 'usd_monthly' ? NANO_PER_CENT : 1;
  const headers: Record<string, string> = {
    'ratelimit-limit': String(Math.floor(state.limit / unit)),
    'ratelimit-remaining': String(Math.floor(state.remaining / unit)),
    'ratelimit-reset': seconds(state.resetMs),
  };
  if (state.retryAfterMs > 0)
    headers['retry-after'] = String(Math.max(1, Math.ceil(state.retryAfterMs / 1000)));
  return headers;
}
