import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it } from 'node:test';
import type { AdmitResult, LimitState, LimitStore, Reservation } from '../../src/limits/limit-store.ts';
import type { LimitName, LimitValues } from '../../src/limits/limits.ts';

/** Noon UTC, on a minute boundary. */
export const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
export const LEASE_TTL_MS = 10_000;
const NONE: LimitValues = { rpm: 0, tpm: 0, daily: 0, streams: 0, usd_daily: 0, usd_monthly: 0 };

export type StoreFactory = (options: { leaseTtlMs: number }) => LimitStore | Promise<LimitStore>;

/**
 * The rules every LimitStore must follow, with exact numbers, so the memory and the Redis store are
 * held to the same behaviour. `make` gives a fresh store; each test uses its own identity.
 */
export function limitStoreBehaviour(make: StoreFactory): void {
  const withStore = (name: string, body: (s: Harness) => Promise<void>): void => {
    it(name, async () => {
      const store = await make({ leaseTtlMs: LEASE_TTL_MS });
      try {
        await body(new Harness(store, `id-${randomUUID().slice(0, 8)}`));
      } finally {
        await store.close();
      }
    });
  };

  withStore('rpm: admits up to the limit, then denies until the sliding window has room', async (s) => {
    const limits = { ...NONE, rpm: 3 };
    assert.deepEqual(await s.remaining(limits, T0), { rpm: 2 });
    assert.deepEqual(await s.remaining(limits, T0 + 1), { rpm: 1 });
    assert.deepEqual(await s.remaining(limits, T0 + 2), { rpm: 0 });
    const denied = await s.denied(limits, T0 + 3);
    // Three in this window: in the next, 3 × (1 − x/60 s) + 1 ≤ 3 from x = 20 s on.
    assert.deepEqual(denied, [
      { name: 'rpm', limit: 3, remaining: 0, resetMs: 59_997, retryAfterMs: 79_997 },
    ]);
    await s.denied(limits, T0 + 79_999);
    assert.deepEqual(await s.remaining(limits, T0 + 80_000), { rpm: 0 });
  });

  withStore('rpm: the previous window weighs by the share of it still inside the last minute', async (s) => {
    const limits = { ...NONE, rpm: 4 };
    for (let i = 0; i < 4; i++) await s.allowed(limits, T0 + 10_000);
    // 45 s into the next window: 4 × 0.25 = 1 counted, so three more fit.
    for (let i = 0; i < 3; i++) await s.allowed(limits, T0 + 105_000);
    const [state] = await s.denied(limits, T0 + 105_000);
    // Now 1 + 3 = 4: one more fits once the previous window has slid out entirely (15 s from now).
    assert.deepEqual(state, { name: 'rpm', limit: 4, remaining: 0, resetMs: 15_000, retryAfterMs: 15_000 });
  });

  withStore('a denied request counts nothing', async (s) => {
    const limits = { ...NONE, rpm: 5, tpm: 100 };
    await s.allowed(limits, T0, 80);
    await s.denied(limits, T0, 80);
    assert.deepEqual(await s.remaining(limits, T0, 10), { rpm: 3, tpm: 10 });
  });

  withStore('tpm: a max_tokens reservation settled lower gives the capacity back', async (s) => {
    const limits = { ...NONE, tpm: 1000 };
    const first = await s.allowed(limits, T0, 600);
    const [denied] = await s.denied(limits, T0 + 1, 600);
    assert.equal(denied?.remaining, 400);
    assert.deepEqual(
      await s.store.settle({ reservation: first, actualTokens: 100, nowMs: T0 + 2, refundRequest: false }),
      { ok: true },
    );
    assert.deepEqual(await s.remaining(limits, T0 + 3, 600), { tpm: 300 });
  });

  withStore('tpm: usage above the reservation is counted', async (s) => {
    const limits = { ...NONE, tpm: 1000 };
    const first = await s.allowed(limits, T0, 100);
    await s.store.settle({ reservation: first, actualTokens: 700, nowMs: T0 + 1, refundRequest: false });
    await s.denied(limits, T0 + 2, 301);
    assert.deepEqual(await s.remaining(limits, T0 + 2, 300), { tpm: 0 });
  });

  withStore('tpm: a reservation above the limit is capped, so it fits an empty window', async (s) => {
    const limits = { ...NONE, tpm: 1000 };
    assert.deepEqual(await s.remaining(limits, T0, 5000), { tpm: 0 });
    await s.denied(limits, T0, 1);
  });

  withStore(
    'a late settle: the unused part of an expired window is dropped, extra usage counts now',
    async (s) => {
      const limits = { ...NONE, tpm: 1000 };
      const first = await s.allowed(limits, T0, 600);
      const second = await s.allowed(limits, T0, 400);
      const later = T0 + 180_000;
      await s.store.settle({ reservation: first, actualTokens: 100, nowMs: later, refundRequest: false });
      assert.deepEqual(await s.remaining(limits, later, 0), { tpm: 1000 });
      await s.store.settle({ reservation: second, actualTokens: 1300, nowMs: later, refundRequest: false });
      assert.deepEqual(await s.remaining(limits, later + 1, 100), { tpm: 0 });
    },
  );

  withStore('daily: a budget per UTC day, settled from real usage, renewed at midnight', async (s) => {
    const limits = { ...NONE, daily: 1000 };
    const first = await s.allowed(limits, T0, 800);
    const untilMidnight = 12 * 3_600_000;
    assert.deepEqual(await s.denied(limits, T0, 300), [
      { name: 'daily', limit: 1000, remaining: 200, resetMs: untilMidnight, retryAfterMs: untilMidnight },
    ]);
    await s.store.settle({ reservation: first, actualTokens: 250, nowMs: T0 + 5, refundRequest: false });
    assert.deepEqual(await s.remaining(limits, T0 + 6, 700), { daily: 50 });
    await s.denied(limits, T0 + untilMidnight - 1, 100);
    assert.deepEqual(await s.remaining(limits, T0 + untilMidnight, 100), { daily: 900 });
  });

  withStore('usd_daily: nano-dollars per UTC day, exact past 2^50, settled from the real cost', async (s) => {
    const limits = { ...NONE, usd_daily: 5_000_000_000_000_000 };
    const untilMidnight = 12 * 3_600_000;
    const first = await s.usd(limits, T0, 3_000_000_000_000_000);
    assert.equal(first.outcome, 'allowed');
    assert.deepEqual(first.states, [
      { name: 'usd_daily', limit: 5e15, remaining: 2e15, resetMs: untilMidnight, retryAfterMs: 0 },
    ]);
    const denied = await s.usd(limits, T0 + 1, 2_500_000_000_000_000);
    assert.equal(denied.outcome, 'denied');
    assert.deepEqual(denied.states, [
      {
        name: 'usd_daily',
        limit: 5e15,
        remaining: 2e15,
        resetMs: untilMidnight - 1,
        retryAfterMs: untilMidnight - 1,
      },
    ]);
    await s.store.settle({
      reservation: first.reservation,
      actualTokens: 0,
      actualUsdNano: 1_000_000_000_000_001,
      nowMs: T0 + 2,
      refundRequest: false,
    });
    const after = await s.usd(limits, T0 + 3, 1_000_000_000_000_000);
    assert.equal(after.states[0]?.remaining, 2_999_999_999_999_999);
    // Renewed at midnight.
    const next = await s.usd(limits, T0 + untilMidnight, 7);
    assert.equal(next.states[0]?.remaining, 5_000_000_000_000_000 - 7);
  });

  withStore(
    'usd_monthly: renews on the first of the month; an unknown cost keeps its reservation',
    async (s) => {
      const limits = { ...NONE, usd_monthly: 1000 };
      // From 15 January 12:00 UTC to 1 February 00:00 UTC.
      const untilFebruary = 16.5 * 86_400_000;
      const first = await s.usd(limits, T0, 800);
      assert.equal(first.outcome, 'allowed');
      const denied = await s.usd(limits, T0, 300);
      assert.deepEqual(denied.states, [
        {
          name: 'usd_monthly',
          limit: 1000,
          remaining: 200,
          resetMs: untilFebruary,
          retryAfterMs: untilFebruary,
        },
      ]);
      const settle = { reservation: first.reservation, actualTokens: 0, nowMs: T0 + 1, refundRequest: false };
      await s.store.settle({ ...settle, actualUsdNano: null });
      assert.equal((await s.usd(limits, T0 + 2, 200)).outcome, 'allowed');
      assert.equal((await s.usd(limits, T0 + 2, 1)).outcome, 'denied');
      assert.equal((await s.usd(limits, T0 + untilFebruary, 1000)).outcome, 'allowed');
    },
  );

  withStore(
    'usd: a reservation above the budget is capped, so it fits an empty budget; costs above it count',
    async (s) => {
      const limits = { ...NONE, usd_daily: 1000, usd_monthly: 5000 };
      const first = await s.usd(limits, T0, 1_000_000);
      assert.equal(first.outcome, 'allowed');
      assert.deepEqual(
        first.states.map((state) => state.remaining),
        [0, 0],
      );
      assert.equal((await s.usd(limits, T0, 1)).outcome, 'denied');
      await s.store.settle({
        reservation: first.reservation,
        actualTokens: 0,
        actualUsdNano: 1500,
        nowMs: T0 + 1,
        refundRequest: false,
      });
      const tomorrow = await s.usd(limits, T0 + 12 * 3_600_000, 0);
      assert.deepEqual(
        tomorrow.states.map((state) => state.remaining),
        [1000, 3500],
      );
    },
  );

  withStore('streams: concurrent leases up to the limit, freed by settle', async (s) => {
    const limits = { ...NONE, streams: 2 };
    const first = await s.allowed(limits, T0);
    assert.notEqual(first.leaseId, null);
    await s.allowed(limits, T0);
    assert.deepEqual(await s.denied(limits, T0), [
      { name: 'streams', limit: 2, remaining: 0, resetMs: 1000, retryAfterMs: 1000 },
    ]);
    await s.store.settle({ reservation: first, actualTokens: 0, nowMs: T0 + 1, refundRequest: false });
    assert.deepEqual(await s.remaining(limits, T0 + 2), { streams: 0 });
  });

  withStore('streams: a lease that is not renewed expires; a renewed one holds', async (s) => {
    const limits = { ...NONE, streams: 1 };
    const lease = await s.allowed(limits, T0);
    await s.denied(limits, T0 + LEASE_TTL_MS - 1);
    assert.deepEqual(await s.store.renew(lease, T0 + LEASE_TTL_MS - 1), { ok: true });
    await s.denied(limits, T0 + 2 * LEASE_TTL_MS - 2);
    // The renewed lease has now run out too: as if its process had crashed.
    await s.allowed(limits, T0 + 2 * LEASE_TTL_MS - 1);
  });

  withStore('a refunded request leaves the rpm window as it was', async (s) => {
    const limits = { ...NONE, rpm: 1, tpm: 100 };
    const first = await s.allowed(limits, T0, 50);
    await s.store.settle({ reservation: first, actualTokens: 0, nowMs: T0 + 1, refundRequest: true });
    assert.deepEqual(await s.remaining(limits, T0 + 2, 50), { rpm: 0, tpm: 50 });
  });

  withStore('identities are counted apart', async (s) => {
    const limits = { ...NONE, rpm: 1 };
    await s.allowed(limits, T0);
    await s.denied(limits, T0);
    const other = new Harness(s.store, `${s.identity}-other`);
    await other.allowed(limits, T0);
  });

  withStore('no limits: admitted with nothing to report and no lease', async (s) => {
    const result = await s.admit(NONE, T0, 100);
    assert.equal(result.outcome, 'allowed');
    assert.deepEqual(result.states, []);
    assert.equal(result.reservation.leaseId, null);
  });
}

class Harness {
  readonly store: LimitStore;
  readonly identity: string;

  constructor(store: LimitStore, identity: string) {
    this.store = store;
    this.identity = identity;
  }

  admit(limits: LimitValues, nowMs: number, reserveTokens = 0): Promise<AdmitResult> {
    return this.store.admit({ identity: this.identity, limits, nowMs, reserveTokens, leaseId: randomUUID() });
  }

  async usd(
    limits: LimitValues,
    nowMs: number,
    reserveUsdNano: number,
  ): Promise<Exclude<AdmitResult, { outcome: 'unavailable' }>> {
    const result = await this.store.admit({
      identity: this.identity,
      limits,
      nowMs,
      reserveTokens: 0,
      reserveUsdNano,
      leaseId: randomUUID(),
    });
    assert.notEqual(result.outcome, 'unavailable');
    return result as Exclude<AdmitResult, { outcome: 'unavailable' }>;
  }

  async allowed(limits: LimitValues, nowMs: number, reserveTokens = 0): Promise<Reservation> {
    const result = await this.admit(limits, nowMs, reserveTokens);
    assert.equal(result.outcome, 'allowed', JSON.stringify(result));
    return result.reservation;
  }

  /** Admits and returns each limit's remaining count. */
  async remaining(
    limits: LimitValues,
    nowMs: number,
    reserveTokens = 0,
  ): Promise<Partial<Record<LimitName, number>>> {
    const result = await this.admit(limits, nowMs, reserveTokens);
    assert.equal(result.outcome, 'allowed', JSON.stringify(result));
    const states = result.states;
    return Object.fromEntries(states.map((state) => [state.name, state.remaining]));
  }

  async denied(limits: LimitValues, nowMs: number, reserveTokens = 0): Promise<readonly LimitState[]> {
    const result = await this.admit(limits, nowMs, reserveTokens);
    assert.equal(result.outcome, 'denied', JSON.stringify(result));
    return result.states.filter((state) => state.retryAfterMs > 0);
  }
}
