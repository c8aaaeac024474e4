import type { Redis } from 'ioredis';
import {
  DEFAULT_LEASE_TTL_MS,
  DAY_MS,
  STREAM_RETRY_MS,
  WINDOW_MS,
  capTokens,
  counterKeys,
  dayIndex,
  dayKeyTtlMs,
  monthKeyTtlMs,
  untilNextMonthMs,
  windowKeyTtlMs,
  type AdmitRequest,
  type AdmitResult,
  type LimitState,
  type LimitStore,
  type Reservation,
  type SettleRequest,
  type StoreOutcome,
  usdDelta,
} from './limit-store.ts';
import type { LimitName } from './limits.ts';
import { ADMIT, RENEW, SETTLE, type RedisScript } from './redis-scripts.ts';
import { connectRedis, redisReady } from './redis-client.ts';

export interface RedisStoreOptions {
  url: string;
  /** Namespace of every key; default `llmc:`. */
  prefix?: string;
  /** Longest wait for one Redis call before it counts as unavailable; default 200 ms. */
  commandTimeoutMs?: number;
  leaseTtlMs?: number;
  /** Every connection error, including each failed reconnect attempt: count it, don't log each. */
  onConnectionError?: (error: Error) => void;
}

const CODES: readonly LimitName[] = ['rpm', 'tpm', 'daily', 'streams', 'usd_daily', 'usd_monthly'];
/** How long an admission stays undoable after its reply was lost. */
const ADMISSION_MARKER_TTL_MS = 60_000;
const OK: StoreOutcome = { ok: true };

/**
 * Limits shared by every replica through one Redis. Each admission, settlement and renewal is one
 * Lua script, so replicas enforce one limit exactly. A call never throws and never waits longer
 * than the command timeout (plus one round trip to reload the scripts after a Redis restart): it
 * reports `unavailable` and the caller decides (fail open or closed). While disconnected, calls
 * fail at once (no offline queue) and the client reconnects by itself.
 */
export class RedisLimitStore implements LimitStore {
  readonly leaseTtlMs: number;
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(options: RedisStoreOptions) {
    this.leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    this.#prefix = options.prefix ?? 'llmc:';
    this.#redis = connectRedis(options.url, 'llm-connector-limits', {
      commandTimeout: options.commandTimeoutMs ?? 200,
    });
    this.#redis.on('error', (error: Error) => options.onConnectionError?.(error));
  }

  healthy(): boolean {
    return this.#redis.status === 'ready';
  }

  /** Resolves when connected (true) or after `timeoutMs` (false); for start-up and tests. */
  waitUntilReady(timeoutMs: number): Promise<boolean> {
    return redisReady(this.#redis, timeoutMs);
  }

  async admit(request: AdmitRequest): Promise<AdmitResult> {
    const { identity, limits, nowMs } = request;
    const keys = counterKeys(nowMs, nowMs);
    const reservation: Reservation = {
      id: request.leaseId,
      identity,
      limits,
      atMs: nowMs,
      tpmTokens: capTokens(request.reserveTokens, limits.tpm),
      dailyTokens: capTokens(request.reserveTokens, limits.daily),
      usdDailyNano: capTokens(request.reserveUsdNano ?? 0, limits.usd_daily),
      usdMonthlyNano: capTokens(request.reserveUsdNano ?? 0, limits.usd_monthly),
      leaseId: limits.streams > 0 ? request.leaseId : null,
    };
    const names = [
      keys.rpmPrev,
      keys.rpmCur,
      keys.tpmPrev,
      keys.tpmCur,
      keys.day,
      keys.streams,
      `admit:${request.leaseId}`,
      keys.usdDay,
      keys.usdMonth,
    ];
    const { rpm, tpm, daily, streams } = limits;
    const untilMidnight = (dayIndex(nowMs) + 1) * DAY_MS - nowMs;
    const reply = await this.#run(
      ADMIT,
      names.map((name) => this.#key(identity, name)),
      [
        nowMs,
        WINDOW_MS,
        rpm,
        tpm,
        daily,
        streams,
        reservation.tpmTokens,
        reservation.dailyTokens,
        request.leaseId,
      ]
        .concat([this.leaseTtlMs, windowKeyTtlMs(nowMs), dayKeyTtlMs(nowMs), untilMidnight, STREAM_RETRY_MS])
        .concat([ADMISSION_MARKER_TTL_MS, limits.usd_daily, limits.usd_monthly])
        .concat([reservation.usdDailyNano, reservation.usdMonthlyNano])
        .concat([untilNextMonthMs(nowMs), monthKeyTtlMs(nowMs)]),
    );
    if (reply instanceof Error) {
      // The script may still run (a stalled server wakes up): undo it then, if it counted.
      void this.#settle({ reservation, actualTokens: 0, nowMs, refundRequest: true }, true);
      return { outcome: 'unavailable', error: reply };
    }
    const parsed = parseAdmitReply(reply);
    if (parsed instanceof Error) return { outcome: 'unavailable', error: parsed };
    if (!parsed.allowed) return { outcome: 'denied', states: parsed.states };
    return { outcome: 'allowed', reservation, states: parsed.states };
  }

  settle(request: SettleRequest): Promise<StoreOutcome> {
    return this.#settle(request, false);
  }

  async #settle(request: SettleRequest, onlyIfCounted: boolean): Promise<StoreOutcome> {
    const { reservation: r, nowMs } = request;
    const keys = counterKeys(r.atMs, nowMs);
    const names = [
      keys.rpmReserved,
      keys.tpmReserved,
      keys.tpmCur,
      keys.dayReserved,
      keys.day,
      keys.streams,
      `admit:${r.id}`,
      keys.usdDayReserved,
      keys.usdDay,
      keys.usdMonthReserved,
      keys.usdMonth,
    ];
    const reply = await this.#run(
      SETTLE,
      names.map((name) => this.#key(r.identity, name)),
      [
        request.refundRequest && r.limits.rpm > 0 ? 1 : 0,
        r.limits.tpm > 0 ? request.actualTokens - r.tpmTokens : 0,
        windowKeyTtlMs(nowMs),
        r.limits.daily > 0 ? request.actualTokens - r.dailyTokens : 0,
        dayKeyTtlMs(nowMs),
        r.leaseId ?? '',
        onlyIfCounted ? 1 : 0,
        r.limits.usd_daily > 0 ? usdDelta(request.actualUsdNano, r.usdDailyNano) : 0,
        r.limits.usd_monthly > 0 ? usdDelta(request.actualUsdNano, r.usdMonthlyNano) : 0,
        monthKeyTtlMs(nowMs),
      ],
    );
    return reply instanceof Error ? { ok: false, error: reply } : OK;
  }

  async renew(reservation: Reservation, nowMs: number): Promise<StoreOutcome> {
    if (reservation.leaseId === null) return OK;
    const key = this.#key(reservation.identity, 'streams');
    const reply = await this.#run(
      RENEW,
      [key],
      [reservation.leaseId, nowMs + this.leaseTtlMs, this.leaseTtlMs],
    );
    return reply instanceof Error ? { ok: false, error: reply } : OK;
  }

  async close(): Promise<void> {
    try {
      await this.#redis.quit();
    } catch {
      this.#redis.disconnect();
    }
  }

  /** `llmc:{name}:rpm:…`: the hash tag keeps one identity's keys in one Redis Cluster slot. */
  #key(identity: string, suffix: string): string {
    return `${this.#prefix}{${identity}}:${suffix}`;
  }

  /** EVALSHA, and EVAL once when the server does not know the script (e.g. after a restart). */
  async #run(
    script: RedisScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    try {
      try {
        return await this.#redis.evalsha(script.sha, keys.length, ...keys, ...args);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return await this.#redis.eval(script.lua, keys.length, ...keys, ...args);
      }
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  }
}

/** Reads the admit script's flat integer reply. */
export function parseAdmitReply(reply: unknown): { allowed: boolean; states: LimitState[] } | Error {
  if (!Array.isArray(reply) || reply.length % 5 !== 1 || !reply.every((v) => typeof v === 'number')) {
    return new Error('unexpected reply from the admit script');
  }
  const values = reply;
  const states: LimitState[] = [];
  for (let i = 1; i < values.length; i += 5) {
    const [code = 0, limit = 0, remaining = 0, resetMs = 0, retryAfterMs = 0] = values.slice(i, i + 5);
    const name = CODES[code - 1];
    if (name === undefined) return new Error('unexpected reply from the admit script');
    states.push({ name, limit, remaining, resetMs, retryAfterMs });
  }
  return { allowed: values[0] === 1, states };
}
