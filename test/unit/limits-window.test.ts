import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  capTokens,
  counterKeys,
  dailyState,
  dayKeyTtlMs,
  slidingState,
  streamsState,
  windowKeyTtlMs,
  type LimitState,
} from '../../src/limits/limit-store.ts';
import { rateLimitHeaders, reportedLimit } from '../../src/limits/rate-limit-headers.ts';
import { parseAdmitReply } from '../../src/limits/redis-store.ts';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

describe('sliding window counter', () => {
  it('weighs the previous window by the share of it still inside the last 60 s', () => {
    // 15 s in: 40 × 0.75 = 30, plus 10 in this window, plus this request.
    assert.deepEqual(slidingState('rpm', 100, 40, 10, 1, T0 + 15_000), {
      name: 'rpm',
      limit: 100,
      remaining: 59,
      resetMs: 45_000,
      retryAfterMs: 0,
    });
  });

  it('admits exactly up to the limit', () => {
    assert.equal(slidingState('tpm', 100, 0, 60, 40, T0).retryAfterMs, 0);
    assert.equal(slidingState('tpm', 100, 0, 60, 41, T0).retryAfterMs > 0, true);
  });

  it('retry-after: when the previous window blocks, until it has decayed enough', () => {
    // 30 s in: 60 × 0.5 + 30 = 60 ≥ 60. 60 × (1 − x/60) + 30 + 1 ≤ 60 from x = 31 s.
    assert.equal(slidingState('rpm', 60, 60, 30, 1, T0 + 30_000).retryAfterMs, 1_000);
  });

  it('retry-after: when this window alone is full, until it has slid far enough out', () => {
    // Full at 10 s in: next window, 60 × (1 − x/60) + 1 ≤ 60 from x = 1 s; 50 s + 1 s.
    assert.equal(slidingState('rpm', 60, 0, 60, 1, T0 + 10_000).retryAfterMs, 51_000);
  });
});

describe('daily budget and streams', () => {
  it('daily: renews at 00:00 UTC', () => {
    assert.deepEqual(dailyState(1000, 900, 100, T0), {
      name: 'daily',
      limit: 1000,
      remaining: 0,
      resetMs: 43_200_000,
      retryAfterMs: 0,
    });
    assert.deepEqual(dailyState(1000, 901, 100, T0), {
      name: 'daily',
      limit: 1000,
      remaining: 99,
      resetMs: 43_200_000,
      retryAfterMs: 43_200_000,
    });
  });

  it('streams: a slot is free while fewer than the limit are open', () => {
    assert.equal(streamsState(2, 1).retryAfterMs, 0);
    assert.deepEqual(streamsState(2, 2), {
      name: 'streams',
      limit: 2,
      remaining: 0,
      resetMs: 1000,
      retryAfterMs: 1000,
    });
  });

  it('reservations are capped at the limit; nothing is reserved without one', () => {
    assert.equal(capTokens(5000, 1000), 1000);
    assert.equal(capTokens(300.7, 1000), 300);
    assert.equal(capTokens(-3, 1000), 0);
    assert.equal(capTokens(5000, 0), 0);
    assert.equal(capTokens(Number.NaN, 1000), 0);
  });
});

describe('counter keys and lifetimes', () => {
  it('a window counter lives until its role as the previous window is over', () => {
    assert.equal(windowKeyTtlMs(T0 + 15_000), 120_000 - 15_000 + 1_000);
    assert.equal(dayKeyTtlMs(T0), 43_200_000 + 60_000);
  });

  it('names the reservation’s windows and the current ones', () => {
    const m = T0 / 60_000;
    const keys = counterKeys(T0, T0 + 61_000);
    assert.equal(keys.tpmReserved, `tpm:${m}`);
    assert.equal(keys.tpmPrev, `tpm:${m}`);
    assert.equal(keys.tpmCur, `tpm:${m + 1}`);
    assert.equal(keys.day, `day:${Math.floor(T0 / 86_400_000)}`);
  });
});

describe('RateLimit headers', () => {
  const state = (
    name: LimitState['name'],
    limit: number,
    remaining: number,
    resetMs: number,
    retryAfterMs = 0,
  ): LimitState => ({
    name,
    limit,
    remaining,
    resetMs,
    retryAfterMs,
  });

  it('allowed: reports the limit closest to running out, never streams', () => {
    const states = [
      state('rpm', 60, 50, 30_000),
      state('tpm', 1000, 100, 30_000),
      state('streams', 2, 0, 1000),
    ];
    assert.equal(reportedLimit(states)?.name, 'tpm');
    assert.deepEqual(rateLimitHeaders(states), {
      'ratelimit-limit': '1000',
      'ratelimit-remaining': '100',
      'ratelimit-reset': '30',
    });
    assert.deepEqual(rateLimitHeaders([state('streams', 2, 1, 1000)]), {});
    assert.deepEqual(rateLimitHeaders([]), {});
  });

  it('denied: reports the failing limit that frees up last, with Retry-After in whole seconds', () => {
    const states = [
      state('rpm', 60, 0, 30_000, 1_200),
      state('tpm', 1000, 900, 30_000),
      state('daily', 10, 0, 7_200_000, 7_200_000),
    ];
    assert.deepEqual(rateLimitHeaders(states), {
      'ratelimit-limit': '10',
      'ratelimit-remaining': '0',
      'ratelimit-reset': '7200',
      'retry-after': '7200',
    });
    assert.equal(rateLimitHeaders([state('rpm', 60, 0, 30_500, 1)])['retry-after'], '1');
    assert.equal(rateLimitHeaders([state('rpm', 60, 0, 30_500, 1_001)])['ratelimit-reset'], '31');
  });
});

describe('parseAdmitReply', () => {
  it('reads the admit script’s flat reply', () => {
    assert.deepEqual(parseAdmitReply([1, 1, 60, 59, 45_000, 0, 4, 2, 1, 1000, 0]), {
      allowed: true,
      states: [
        { name: 'rpm', limit: 60, remaining: 59, resetMs: 45_000, retryAfterMs: 0 },
        { name: 'streams', limit: 2, remaining: 1, resetMs: 1000, retryAfterMs: 0 },
      ],
    });
    assert.deepEqual(parseAdmitReply([1]), { allowed: true, states: [] });
  });

  it('turns anything else into an error, not a crash', () => {
    for (const reply of [null, 'OK', [], [1, 1, 2], [1, 9, 1, 1, 1, 0], [1, '1', 1, 1, 1, 0]])
      assert.ok(parseAdmitReply(reply) instanceof Error);
  });
});
