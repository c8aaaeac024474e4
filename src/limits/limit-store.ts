import type { LimitName, LimitValues } from './limits.ts';

/**
 * Where limit counters live. Every backend implements the same rules, written once here as pure
 * functions (and mirrored in Lua by the Redis backend):
 *
 * - `rpm` and `tpm`: sliding-window counter over 60 s windows. The estimate is
 *   `previous window × (unelapsed share of the current window) + current window`; a request is
 *   admitted when `estimate + cost <= limit` (cost 1 request, or the token reservation).
 * - `daily` and `usd_daily`: a fixed UTC calendar day; `usd_monthly`: a fixed UTC calendar month.
 *   The dollar budgets count nano-dollars: a request reserves its worst-case cost, replaced at the
 *   end by what its usage cost.
 * - `streams`: leases with an expiry (renewed while the answer is open), so a crashed process's
 *   leases run out by themselves.
 * A token (or dollar) reservation is capped at the limit, so one large `max_tokens` is admitted into
 * an empty window instead of never.
 */
export interface LimitStore {
  admit(request: AdmitRequest): Promise<AdmitResult>;
  /** Corrects the token counters from real usage and frees the stream slot, in one step. */
  settle(request: SettleRequest): Promise<StoreOutcome>;
  /** Pushes a stream lease's expiry out by `leaseTtlMs` from `nowMs`. */
  renew(reservation: Reservation, nowMs: number): Promise<StoreOutcome>;
  /** False while the backend cannot answer (for /readyz). */
  healthy(): boolean;
  close(): Promise<void>;
  readonly leaseTtlMs: number;
}

export interface AdmitRequest {
  readonly identity: string;
  readonly limits: LimitValues;
  readonly nowMs: number;
  readonly reserveTokens: number;
  /** The request's worst-case cost in nano-dollars (0 when no dollar budget applies). */
  readonly reserveUsdNano?: number;
  readonly leaseId: string;
}

/** One limit's state after an admission check. `retryAfterMs` is 0 when this limit allowed it. */
export interface LimitState {
  readonly name: LimitName;
  readonly limit: number;
  readonly remaining: number;
  readonly resetMs: number;
  readonly retryAfterMs: number;
}

/** What an admitted request holds, to settle later. */
export interface Reservation {
  /** The admission's id (the AdmitRequest's `leaseId`). */
  readonly id: string;
  readonly identity: string;
  readonly limits: LimitValues;
  readonly atMs: number;
  readonly tpmTokens: number;
  readonly dailyTokens: number;
  /** Nano-dollars reserved against the day's and the month's dollar budgets. */
  readonly usdDailyNano: number;
  readonly usdMonthlyNano: number;
  readonly leaseId: string | null;
}

export type AdmitResult =
  | { readonly outcome: 'allowed'; readonly reservation: Reservation; readonly states: readonly LimitState[] }
  | { readonly outcome: 'denied'; readonly states: readonly LimitState[] }
  | { readonly outcome: 'unavailable'; readonly error: Error };

export interface SettleRequest {
  readonly reservation: Reservation;
  readonly actualTokens: number;
  /** What the answer cost, in nano-dollars (0 when none began); null: unknown, the reservation stands. */
  readonly actualUsdNano?: number | null;
  readonly nowMs: number;
  /** Also take the request back out of the rpm window (it never reached the upstream). */
  readonly refundRequest: boolean;
}

export type StoreOutcome = { readonly ok: true } | { readonly ok: false; readonly error: Error };

export const WINDOW_MS = 60_000;
export const DAY_MS = 86_400_000;
export const DEFAULT_LEASE_TTL_MS = 60_000;
/** A denied stream has no known end; clients are told to come back in a second. */
export const STREAM_RETRY_MS = 1_000;
/** Counters outlive their window by this much, so a late settle still finds them. */
const KEY_GRACE_MS = 1_000;
const DAY_KEY_GRACE_MS = 60_000;

export function windowIndex(nowMs: number): number {
  return Math.floor(nowMs / WINDOW_MS);
}

export function dayIndex(nowMs: number): number {
  return Math.floor(nowMs / DAY_MS);
}

/** Time to live of the current window's counter: it is the previous window during the next one. */
export function windowKeyTtlMs(nowMs: number): number {
  return (windowIndex(nowMs) + 2) * WINDOW_MS + KEY_GRACE_MS - nowMs;
}

export function dayKeyTtlMs(nowMs: number): number {
  return (dayIndex(nowMs) + 1) * DAY_MS + DAY_KEY_GRACE_MS - nowMs;
}

/** Months since year 0 (UTC): year × 12 + month. */
export function monthIndex(nowMs: number): number {
  const date = new Date(nowMs);
  return date.getUTCFullYear() * 12 + date.getUTCMonth();
}

/** Milliseconds until the first of the next UTC month. */
export function untilNextMonthMs(nowMs: number): number {
  const next = monthIndex(nowMs) + 1;
  return Date.UTC(Math.floor(next / 12), next % 12, 1) - nowMs;
}

export function monthKeyTtlMs(nowMs: number): number {
  return untilNextMonthMs(nowMs) + DAY_KEY_GRACE_MS;
}

export function untilMidnightMs(nowMs: number): number {
  return (dayIndex(nowMs) + 1) * DAY_MS - nowMs;
}

/** How far a settlement moves a dollar counter: actual − reserved (0 when the actual cost is unknown). */
export function usdDelta(actualUsdNano: number | null | undefined, reserved: number): number {
  return actualUsdNano === null ? 0 : (actualUsdNano ?? 0) - reserved;
}

export function capTokens(reserve: number, limit: number): number {
  return limit > 0 && Number.isFinite(reserve) ? Math.min(Math.max(0, Math.floor(reserve)), limit) : 0;
}

/** The sliding-window-counter rule (mirrored line by line in redis-scripts.ts). */
export function slidingState(
  name: LimitName,
  limit: number,
  prev: number,
  cur: number,
  cost: number,
  nowMs: number,
): LimitState {
  const elapsed = nowMs - windowIndex(nowMs) * WINDOW_MS;
  const estimate = (prev * (WINDOW_MS - elapsed)) / WINDOW_MS + cur;
  const allowed = estimate + cost <= limit;
  const remaining = Math.max(0, Math.floor(allowed ? limit - estimate - cost : limit - estimate));
  let retryAfterMs = 0;
  if (!allowed) {
    // Ignoring newcomers: the wait until the previous window has decayed enough (if this window
    // alone has room), else until this window, as the next one's previous, has.
    retryAfterMs =
      cur + cost <= limit
        ? Math.ceil((WINDOW_MS * (prev + cur + cost - limit)) / prev) - elapsed
        : WINDOW_MS - elapsed + Math.ceil((WINDOW_MS * (cur + cost - limit)) / cur);
    retryAfterMs = Math.max(1, retryAfterMs);
  }
  return { name, limit, remaining, resetMs: WINDOW_MS - elapsed, retryAfterMs };
}

export function dailyState(limit: number, used: number, cost: number, nowMs: number): LimitState {
  const allowed = used + cost <= limit;
  const untilMidnight = (dayIndex(nowMs) + 1) * DAY_MS - nowMs;
  const remaining = Math.max(0, allowed ? limit - used - cost : limit - used);
  return {
    name: 'daily',
    limit,
    remaining,
    resetMs: untilMidnight,
    retryAfterMs: allowed ? 0 : untilMidnight,
  };
}

/** A dollar budget over a fixed period that renews in `untilResetMs` (mirrored in redis-scripts.ts). */
export function budgetState(
  name: 'usd_daily' | 'usd_monthly',
  limit: number,
  used: number,
  cost: number,
  untilResetMs: number,
): LimitState {
  const allowed = used + cost <= limit;
  const remaining = Math.max(0, allowed ? limit - used - cost : limit - used);
  return { name, limit, remaining, resetMs: untilResetMs, retryAfterMs: allowed ? 0 : untilResetMs };
}

export function streamsState(limit: number, open: number): LimitState {
  const allowed = open < limit;
  const remaining = Math.max(0, allowed ? limit - open - 1 : limit - open);
  return {
    name: 'streams',
    limit,
    remaining,
    resetMs: STREAM_RETRY_MS,
    retryAfterMs: allowed ? 0 : STREAM_RETRY_MS,
  };
}

/** Key suffixes of one identity's counters; the Redis store prefixes them with `llmc:{identity}:`. */
export function counterKeys(reservationAtMs: number, nowMs: number) {
  const m = windowIndex(nowMs);
  return {
    rpmPrev: `rpm:${m - 1}`,
    rpmCur: `rpm:${m}`,
    tpmPrev: `tpm:${m - 1}`,
    tpmCur: `tpm:${m}`,
    day: `day:${dayIndex(nowMs)}`,
    rpmReserved: `rpm:${windowIndex(reservationAtMs)}`,
    tpmReserved: `tpm:${windowIndex(reservationAtMs)}`,
    dayReserved: `day:${dayIndex(reservationAtMs)}`,
    usdDay: `usdday:${dayIndex(nowMs)}`,
    usdMonth: `usdmon:${monthIndex(nowMs)}`,
    usdDayReserved: `usdday:${dayIndex(reservationAtMs)}`,
    usdMonthReserved: `usdmon:${monthIndex(reservationAtMs)}`,
    streams: 'streams',
  } as const;
}
