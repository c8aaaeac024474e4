import {
  DEFAULT_LEASE_TTL_MS,
  budgetState,
  capTokens,
  counterKeys,
  dailyState,
  dayKeyTtlMs,
  monthKeyTtlMs,
  slidingState,
  streamsState,
  untilMidnightMs,
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

interface Counter {
  value: number;
  expiresAt: number;
}

const OK: StoreOutcome = { ok: true };
const SWEEP_EVERY_MS = 60_000;

/**
 * Limits for a single process. Keeps the same counters, with the same lifetimes, as the Redis
 * store keeps in Redis; a JavaScript turn is atomic, so every check-and-count is too.
 */
export class MemoryLimitStore implements LimitStore {
  readonly leaseTtlMs: number;
  readonly #counters = new Map<string, Counter>();
  readonly #leases = new Map<string, Map<string, number>>();
  #lastSweep = Number.NEGATIVE_INFINITY;

  constructor(options: { leaseTtlMs?: number } = {}) {
    this.leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  admit(request: AdmitRequest): Promise<AdmitResult> {
    const { identity, limits, nowMs } = request;
    this.#sweep(nowMs);
    const keys = counterKeys(nowMs, nowMs);
    const get = (suffix: string): number => this.#get(`${identity}:${suffix}`, nowMs);
    const tpmCost = capTokens(request.reserveTokens, limits.tpm);
    const dailyCost = capTokens(request.reserveTokens, limits.daily);
    const usdDayCost = capTokens(request.reserveUsdNano ?? 0, limits.usd_daily);
    const usdMonthCost = capTokens(request.reserveUsdNano ?? 0, limits.usd_monthly);
    const leases = this.#openLeases(identity, nowMs);
    const states: LimitState[] = [];
    if (limits.rpm > 0)
      states.push(slidingState('rpm', limits.rpm, get(keys.rpmPrev), get(keys.rpmCur), 1, nowMs));
    if (limits.tpm > 0)
      states.push(slidingState('tpm', limits.tpm, get(keys.tpmPrev), get(keys.tpmCur), tpmCost, nowMs));
    if (limits.daily > 0) states.push(dailyState(limits.daily, get(keys.day), dailyCost, nowMs));
    if (limits.streams > 0) states.push(streamsState(limits.streams, leases.size));
    if (limits.usd_daily > 0)
      states.push(
        budgetState('usd_daily', limits.usd_daily, get(keys.usdDay), usdDayCost, untilMidnightMs(nowMs)),
      );
    if (limits.usd_monthly > 0)
      states.push(
        budgetState(
          'usd_monthly',
          limits.usd_monthly,
          get(keys.usdMonth),
          usdMonthCost,
          untilNextMonthMs(nowMs),
        ),
      );
    if (states.some((state) => state.retryAfterMs > 0)) return Promise.resolve({ outcome: 'denied', states });

    const windowTtl = windowKeyTtlMs(nowMs);
    if (limits.rpm > 0) this.#add(`${identity}:${keys.rpmCur}`, 1, nowMs, windowTtl);
    if (tpmCost > 0) this.#add(`${identity}:${keys.tpmCur}`, tpmCost, nowMs, windowTtl);
    if (dailyCost > 0) this.#add(`${identity}:${keys.day}`, dailyCost, nowMs, dayKeyTtlMs(nowMs));
    if (usdDayCost > 0) this.#add(`${identity}:${keys.usdDay}`, usdDayCost, nowMs, dayKeyTtlMs(nowMs));
    if (usdMonthCost > 0)
      this.#add(`${identity}:${keys.usdMonth}`, usdMonthCost, nowMs, monthKeyTtlMs(nowMs));
    const leaseId = limits.streams > 0 ? request.leaseId : null;
    if (leaseId !== null) leases.set(leaseId, nowMs + this.leaseTtlMs);
    const reservation: Reservation = {
      id: request.leaseId,
      identity,
      limits,
      atMs: nowMs,
      tpmTokens: tpmCost,
      dailyTokens: dailyCost,
      usdDailyNano: usdDayCost,
      usdMonthlyNano: usdMonthCost,
      leaseId,
    };
    return Promise.resolve({ outcome: 'allowed', reservation, states });
  }

  settle(request: SettleRequest): Promise<StoreOutcome> {
    const { reservation: r, nowMs } = request;
    const keys = counterKeys(r.atMs, nowMs);
    const key = (suffix: string): string => `${r.identity}:${suffix}`;
    if (request.refundRequest && r.limits.rpm > 0) this.#lower(key(keys.rpmReserved), 1, nowMs);
    if (r.limits.tpm > 0) {
      this.#adjust(
        key(keys.tpmReserved),
        key(keys.tpmCur),
        request.actualTokens - r.tpmTokens,
        nowMs,
        windowKeyTtlMs(nowMs),
      );
    }
    if (r.limits.daily > 0) {
      this.#adjust(
        key(keys.dayReserved),
        key(keys.day),
        request.actualTokens - r.dailyTokens,
        nowMs,
        dayKeyTtlMs(nowMs),
      );
    }
    if (r.limits.usd_daily > 0) {
      const delta = usdDelta(request.actualUsdNano, r.usdDailyNano);
      this.#adjust(key(keys.usdDayReserved), key(keys.usdDay), delta, nowMs, dayKeyTtlMs(nowMs));
    }
    if (r.limits.usd_monthly > 0) {
      const delta = usdDelta(request.actualUsdNano, r.usdMonthlyNano);
      this.#adjust(key(keys.usdMonthReserved), key(keys.usdMonth), delta, nowMs, monthKeyTtlMs(nowMs));
    }
    if (r.leaseId !== null) this.#leases.get(r.identity)?.delete(r.leaseId);
    return Promise.resolve(OK);
  }

  renew(reservation: Reservation, nowMs: number): Promise<StoreOutcome> {
    const leases = this.#leases.get(reservation.identity);
    if (reservation.leaseId !== null && leases?.has(reservation.leaseId))
      leases.set(reservation.leaseId, nowMs + this.leaseTtlMs);
    return Promise.resolve(OK);
  }

  healthy(): boolean {
    return true;
  }

  close(): Promise<void> {
    this.#counters.clear();
    this.#leases.clear();
    return Promise.resolve();
  }

  /** More tokens than reserved count now; fewer give the unused part back to the reservation's window. */
  #adjust(reservedKey: string, currentKey: string, delta: number, nowMs: number, ttlMs: number): void {
    if (delta > 0) this.#add(currentKey, delta, nowMs, ttlMs);
    else if (delta < 0) this.#lower(reservedKey, -delta, nowMs);
  }

  #get(key: string, nowMs: number): number {
    const counter = this.#counters.get(key);
    return counter !== undefined && counter.expiresAt > nowMs ? counter.value : 0;
  }

  #add(key: string, amount: number, nowMs: number, ttlMs: number): void {
    this.#counters.set(key, { value: this.#get(key, nowMs) + amount, expiresAt: nowMs + ttlMs });
  }

  /** Never below zero, keeps the expiry, and nothing for a counter that is gone. */
  #lower(key: string, amount: number, nowMs: number): void {
    const counter = this.#counters.get(key);
    if (counter !== undefined && counter.expiresAt > nowMs) counter.value -= Math.min(counter.value, amount);
  }

  #openLeases(identity: string, nowMs: number): Map<string, number> {
    let leases = this.#leases.get(identity);
    if (leases === undefined) {
      leases = new Map();
      this.#leases.set(identity, leases);
    }
    for (const [id, expiresAt] of leases) if (expiresAt <= nowMs) leases.delete(id);
    return leases;
  }

  #sweep(nowMs: number): void {
    if (nowMs - this.#lastSweep < SWEEP_EVERY_MS) return;
    this.#lastSweep = nowMs;
    for (const [key, counter] of this.#counters) if (counter.expiresAt <= nowMs) this.#counters.delete(key);
    for (const [identity, leases] of this.#leases) if (leases.size === 0) this.#leases.delete(identity);
  }
}
