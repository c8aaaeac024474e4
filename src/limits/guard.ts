import { randomUUID } from 'node:crypto';
import { ConnectorError } from '../errors.ts';
import { extractPresentedKey, type ClientKey, type ClientKeyring } from './client-keys.ts';
import type { LimitState, LimitStore, Reservation, StoreOutcome } from './limit-store.ts';
import { usdString } from '../pricing/cost.ts';
import {
  ANONYMOUS,
  countTokens,
  hasAnyLimit,
  hasUsdBudget,
  picoToNano,
  resolveLimits,
  type LimitName,
  type LimitSettings,
  type LimitValues,
  type TokenUsage,
} from './limits.ts';
import { rateLimitHeaders, reportedLimit } from './rate-limit-headers.ts';
import type { GatePermit, UpstreamGate } from './upstream-gate.ts';
import type { Cancel } from '../cancel.ts';

/** The part of a pino logger the guard uses. */
export interface GuardLogger {
  warn(details: object, message: string): void;
}

export interface GuardOptions {
  /** null: authentication is off and every request is the one `anonymous` client. */
  keyring: ClientKeyring | null;
  limits: LimitSettings;
  store: LimitStore;
  gate: UpstreamGate;
  logger: GuardLogger;
  /** Called for every failed store call (e.g. a metric counter). */
  onRedisError?: (error: Error) => void;
  now?: () => number;
  /** At most one warning per this interval while the store fails; default 10 s. */
  warnIntervalMs?: number;
  /** Runs `tick` every `ms` until the returned function is called; default an unref'd setInterval. */
  every?: (tick: () => void, ms: number) => () => void;
}

function everyInterval(tick: () => void, ms: number): () => void {
  const timer = setInterval(tick, ms).unref();
  return () => {
    clearInterval(timer);
  };
}

export type Authentication = ClientKey | null | 'missing' | 'invalid';

export type RejectionReason =
  LimitName | 'upstream_busy' | 'limits_unavailable' | 'client_closed' | 'unpriced_model';

export interface Rejection {
  readonly ok: false;
  readonly status: 429 | 503 | 499 | 400;
  readonly type: 'rate_limit_error' | 'overloaded_error' | 'client_closed' | 'invalid_request_error';
  readonly reason: RejectionReason;
  readonly message: string;
  /** `Retry-After` and, for limits, `RateLimit-*`: set them on the error response. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface Lease {
  /**
   * Counts the answer's real usage (partial for a cancelled or failed answer; none if unknown) and
   * frees the stream and upstream slots. Only the first call counts; never rejects.
   */
  settle(usage?: TokenUsage, costPicoUsd?: bigint | null): Promise<void>;
  readonly settled: boolean;
}

/**
 * What a request may cost, for the dollar budgets: asked only when the client has one. `worstCase`
 * is the most its answer can cost, in pico-dollars, or null when its model has no known price.
 */
export interface CostEstimate {
  readonly model: string | undefined;
  worstCase(): bigint | null;
}

export interface Admitted {
  readonly ok: true;
  /** The client's name, for logs and metrics. */
  readonly client: string;
  /** `RateLimit-*` for the answer. */
  readonly headers: Readonly<Record<string, string>>;
  readonly lease: Lease;
}

export type Admission = Admitted | Rejection;

export interface Guard {
  authenticate(headers: Readonly<Record<string, string | readonly string[] | undefined>>): Authentication;
  /** Checks the client's limits, reserving `reserveTokens` (e.g. max_tokens), then waits for an upstream slot. */
  admit(
    client: ClientKey | null,
    reserveTokens: number,
    cancel?: Cancel,
    cost?: CostEstimate,
  ): Promise<Admission>;
  /**
   * Counts one request against the client's `rpm` only: no tokens, no stream, no upstream slot (for
   * routes that answer without the upstream, such as the usage reports). Admitted, or a 429.
   */
  countRequest(client: ClientKey | null): Promise<Admitted | Rejection>;
  /** False while a configured Redis cannot be reached. */
  healthy(): boolean;
}

/** The guard as its owner holds it: it can also swap the keyring, e.g. after the keys file changed. */
export interface ReloadableGuard extends Guard {
  /**
   * From the next `authenticate` on, `next` decides who is who (one reference replaced: a request
   * sees the old keys or the new ones, never a mix). Leases already given out are not touched.
   */
  replaceKeyring(next: ClientKeyring): void;
}

/** The error to throw for a rejection (set `rejection.headers` on the reply first). */
export function rejectionError(rejection: Rejection): ConnectorError {
  return new ConnectorError(rejection.type, rejection.status, rejection.message, {
    retryAfter: rejection.headers['retry-after'],
  });
}

const LIMIT_MESSAGES: Record<LimitName, (limit: number) => string> = {
  rpm: (limit) => `Rate limit exceeded: ${limit} requests per minute`,
  tpm: (limit) => `Token rate limit exceeded: ${limit} tokens per minute`,
  daily: (limit) => `Daily token budget of ${limit} tokens used up; it renews at 00:00 UTC`,
  streams: (limit) => `Too many open requests: at most ${limit} at once`,
  usd_daily: (limit) => `Daily budget of $${usd(limit)} used up; it renews at 00:00 UTC`,
  usd_monthly: (limit) =>
    `Monthly budget of $${usd(limit)} used up; it renews on the first of next month at 00:00 UTC`,
};

function usd(nano: number): string {
  return usdString(BigInt(nano) * 1000n);
}

function unpricedRejection(model: string | undefined): Rejection {
  return {
    ok: false,
    status: 400,
    type: 'invalid_request_error',
    reason: 'unpriced_model',
    message: `The model "${model ?? ''}" has no known price, and this key has a budget in dollars: give its price in MODEL_PRICES_FILE, or ask for a priced model`,
    headers: {},
  };
}

function limitRejection(states: readonly LimitState[]): Rejection {
  const state = reportedLimit(states);
  const headers = rateLimitHeaders(states);
  const reason = state?.name ?? 'rpm';
  const message = `${LIMIT_MESSAGES[reason](state?.limit ?? 0)}; retry after ${headers['retry-after'] ?? '1'} s`;
  return { ok: false, status: 429, type: 'rate_limit_error', reason, message, headers };
}

const UNAVAILABLE: Rejection = {
  ok: false,
  status: 503,
  type: 'overloaded_error',
  reason: 'limits_unavailable',
  message: 'Rate limiting is unavailable right now; retry shortly',
  headers: { 'retry-after': '1' },
};

function gateRejection(reason: 'busy' | 'aborted', retryAfterSeconds: number): Rejection {
  if (reason === 'aborted') {
    return {
      ok: false,
      status: 499,
      type: 'client_closed',
      reason: 'client_closed',
      message: 'The client closed the connection',
      headers: {},
    };
  }
  const message = 'Too many requests in flight to the upstream; retry shortly';
  return {
    ok: false,
    status: 503,
    type: 'overloaded_error',
    reason: 'upstream_busy',
    message,
    headers: { 'retry-after': String(retryAfterSeconds) },
  };
}

/** The lease of a request that holds nothing. */
const SETTLED: Lease = { settled: true, settle: () => Promise.resolve() };

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Stores never reject; should one do so anyway, it counts as a failed call. */
function asFailure(error: unknown): StoreOutcome {
  return { ok: false, error: asError(error) };
}

/** Authentication, per-client limits and the upstream gate behind two calls, for the routes. */
export function createGuard(options: GuardOptions): ReloadableGuard {
  const { limits, store, gate, logger } = options;
  let keyring = options.keyring;
  const now = options.now ?? Date.now;
  const warnIntervalMs = options.warnIntervalMs ?? 10_000;
  const every = options.every ?? everyInterval;
  let lastWarnAt = Number.NEGATIVE_INFINITY;
  let suppressed = 0;

  const storeFailed = (error: Error, during: string): void => {
    options.onRedisError?.(error);
    const at = now();
    if (at - lastWarnAt < warnIntervalMs) {
      suppressed++;
      return;
    }
    const policy =
      limits.redisErrorPolicy === 'open'
        ? 'allowing requests (fail open)'
        : 'refusing requests (fail closed)';
    logger.warn({ err: error.message, during, suppressed }, `rate-limit store unavailable; ${policy}`);
    lastWarnAt = at;
    suppressed = 0;
  };

  const settleInStore = async (
    reservation: Reservation,
    actualTokens: number,
    actualUsdNano: number | null,
    refundRequest: boolean,
  ): Promise<void> => {
    const outcome = await store
      .settle({ reservation, actualTokens, actualUsdNano, nowMs: now(), refundRequest })
      .catch(asFailure);
    if (!outcome.ok) storeFailed(outcome.error, 'settle');
  };

  const lease = (reservation: Reservation | null, permit: GatePermit): Lease => {
    let done: Promise<void> | undefined;
    const stopRenewal =
      reservation === null || reservation.leaseId === null
        ? undefined
        : every(
            () => {
              void store
                .renew(reservation, now())
                .catch(asFailure)
                .then((outcome) => {
                  if (!outcome.ok) storeFailed(outcome.error, 'renew');
                });
            },
            Math.max(1, Math.floor(store.leaseTtlMs / 3)),
          );
    return {
      get settled() {
        return done !== undefined;
      },
      settle(usage, costPicoUsd) {
        done ??= (async () => {
          stopRenewal?.();
          permit.release();
          if (reservation === null) return;
          // An answer of unknown cost (a fallback to an unpriced model) keeps its reservation.
          const usdNano =
            costPicoUsd === null ? null : costPicoUsd === undefined ? 0 : picoToNano(costPicoUsd);
          await settleInStore(reservation, countTokens(usage), usdNano, false);
        })();
        return done;
      },
    };
  };

  return {
    authenticate(headers) {
      if (keyring === null) return null;
      const presented = extractPresentedKey(headers);
      if (presented === undefined) return 'missing';
      return keyring.identify(presented) ?? 'invalid';
    },

    async admit(client, reserveTokens, cancel, cost) {
      const identity = client?.name ?? ANONYMOUS;
      const clientLimits = resolveLimits(limits.defaults, client?.limits ?? {});
      let reservation: Reservation | null = null;
      let headers: Readonly<Record<string, string>> = {};
      if (hasAnyLimit(clientLimits)) {
        let reserveUsdNano = 0;
        if (cost !== undefined && hasUsdBudget(clientLimits)) {
          const worst = cost.worstCase();
          if (worst === null) return unpricedRejection(cost.model);
          reserveUsdNano = picoToNano(worst);
        }
        const request = {
          identity,
          limits: clientLimits,
          nowMs: now(),
          reserveTokens,
          reserveUsdNano,
          leaseId: randomUUID(),
        };
        const result = await store
          .admit(request)
          .catch((error: unknown) => ({ outcome: 'unavailable' as const, error: asError(error) }));
        if (result.outcome === 'denied') return limitRejection(result.states);
        if (result.outcome === 'unavailable') {
          storeFailed(result.error, 'admit');
          if (limits.redisErrorPolicy === 'closed') return UNAVAILABLE;
        } else {
          reservation = result.reservation;
          headers = rateLimitHeaders(result.states);
        }
      }
      const slot = await gate.acquire(cancel);
      if (!slot.ok) {
        // Never reached the upstream: give the request and its tokens back.
        if (reservation !== null) void settleInStore(reservation, 0, 0, true);
        return gateRejection(slot.reason, slot.retryAfterSeconds);
      }
      return { ok: true, client: identity, headers, lease: lease(reservation, slot.permit) };
    },

    async countRequest(client) {
      const identity = client?.name ?? ANONYMOUS;
      const resolved = resolveLimits(limits.defaults, client?.limits ?? {});
      const none = { ok: true as const, client: identity, headers: {}, lease: SETTLED };
      if (resolved.rpm === 0) return none;
      const rpmOnly = Object.fromEntries(
        Object.entries(resolved).map(([name, value]) => [name, name === 'rpm' ? value : 0]),
      ) as unknown as LimitValues;
      const result = await store
        .admit({ identity, limits: rpmOnly, nowMs: now(), reserveTokens: 0, leaseId: randomUUID() })
        .catch((error: unknown) => ({ outcome: 'unavailable' as const, error: asError(error) }));
      if (result.outcome === 'denied') return limitRejection(result.states);
      if (result.outcome === 'unavailable') {
        storeFailed(result.error, 'admit');
        return limits.redisErrorPolicy === 'closed' ? UNAVAILABLE : none;
      }
      return { ...none, headers: rateLimitHeaders(result.states) };
    },

    healthy: () => store.healthy(),

    replaceKeyring(next) {
      keyring = next;
    },
  };
}
