import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costOf } from '../../src/pricing/cost.ts';
import {
  HOUR_MS,
  MAX_ROWS_PER_HOUR,
  MemoryUsageStore,
  OTHER_MODEL,
  emptyCounts,
  usageOf,
  type UsageCounts,
} from '../../src/reports/usage-store.ts';

const USAGE = {
  input_tokens: 10,
  output_tokens: 20,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
};

function counts(partial: Partial<UsageCounts>): UsageCounts {
  return { ...emptyCounts(), ...partial };
}

describe('usageOf', () => {
  it('no usage (no answer began): nothing to record', () => {
    assert.equal(usageOf({ usage: undefined, costPicoUsd: undefined }), undefined);
  });

  it('counts each kind of token, and the cost when it is known', () => {
    const usage = {
      input_tokens: 100,
      output_tokens: 50,
      cache_creation_input_tokens: 30,
      cache_read_input_tokens: 7,
    };
    assert.deepEqual(
      usageOf({ usage, costPicoUsd: 1_234_567n }),
      counts({
        requests: 1,
        uncachedInput: 100,
        output: 50,
        cacheWriteUnsplit: 30,
        cacheRead: 7,
        costPicoUsd: 1_234_567n,
      }),
    );
  });

  it('splits cache writes into 5 minutes and 1 hour when the usage says so', () => {
    const split = (m5: number, h1: number) => ({
      ...USAGE,
      cache_creation_input_tokens: 300,
      cache_creation: { ephemeral_5m_input_tokens: m5, ephemeral_1h_input_tokens: h1 },
    });
    const kinds = (got: UsageCounts | undefined) => [
      got?.cacheWrite5m,
      got?.cacheWrite1h,
      got?.cacheWriteUnsplit,
    ];
    assert.deepEqual(kinds(usageOf({ usage: split(100, 200), costPicoUsd: 5n })), [100, 200, 0]);
    // A split that says less than the total leaves the rest unsplit; one that says more is capped.
    assert.deepEqual(kinds(usageOf({ usage: split(0, 50), costPicoUsd: 5n })), [0, 50, 250]);
    assert.deepEqual(kinds(usageOf({ usage: split(900, 900), costPicoUsd: 5n })), [0, 300, 0]);
  });

  it('an unknown cost (null, or none computed) counts every token as unpriced, never as $0', () => {
    for (const costPicoUsd of [null, undefined]) {
      const got = usageOf({ usage: { ...USAGE, cache_read_input_tokens: 5 }, costPicoUsd });
      assert.ok(got);
      assert.equal(got.unpricedTokens, 35);
      assert.equal(got.costPicoUsd, 0n);
    }
    assert.equal(usageOf({ usage: USAGE, costPicoUsd: 0n })?.unpricedTokens, 0);
  });
});

describe('usageOf with the price table', () => {
  it('splits the cost by kind of token, adding up to the answer’s cost', () => {
    const rates = {
      input: 3_000_000n,
      cacheWrite5m: 3_750_000n,
      cacheWrite1h: 6_000_000n,
      cacheRead: 300_000n,
      output: 15_000_000n,
    };
    const prices = new Map([['claude-x', rates]]);
    const usage = {
      input_tokens: 1_000,
      output_tokens: 100,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 2_000,
      cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 200 },
    };
    const cost = costOf(prices, 'claude-x', usage);
    assert.equal(cost, 3_000_000_000n + 1_500_000_000n + 375_000_000n + 1_200_000_000n + 600_000_000n);
    const got = usageOf({ usage, costPicoUsd: cost, model: 'claude-x' }, prices);
    assert.ok(got);
    assert.deepEqual(
      [got.costInput, got.costOutput, got.costCacheWrite5m, got.costCacheWrite1h, got.costCacheRead],
      [3_000_000_000n, 1_500_000_000n, 375_000_000n, 1_200_000_000n, 600_000_000n],
    );
    assert.equal(got.costPicoUsd, cost);
  });
});

describe('MemoryUsageStore', () => {
  const T0 = Date.UTC(2026, 11, 1, 10, 0, 0);

  it('adds answers up per hour, key and model', async () => {
    let now = T0 + 5 * 60_000;
    const store = new MemoryUsageStore({ retentionHours: 24, now: () => now });
    store.record('alice', 'claude-a', counts({ requests: 1, output: 3, costPicoUsd: 10n }));
    store.record('alice', 'claude-a', counts({ requests: 1, output: 4, costPicoUsd: 20n }));
    store.record('bob', 'claude-a', counts({ requests: 1, output: 1 }));
    now += HOUR_MS;
    store.record('alice', 'claude-a', counts({ requests: 1, output: 100 }));
    const rows = await store.read(T0, T0 + 2 * HOUR_MS);
    const simple = rows.map((r) => [r.hourMs - T0, r.key, r.model, r.requests, r.output, r.costPicoUsd]);
    assert.deepEqual(simple, [
      [0, 'alice', 'claude-a', 2, 7, 30n],
      [0, 'bob', 'claude-a', 1, 1, 0n],
      [HOUR_MS, 'alice', 'claude-a', 1, 100, 0n],
    ]);
    assert.equal((await store.read(T0 + HOUR_MS, T0 + 2 * HOUR_MS)).length, 1);
  });

  it('holds at most MAX_ROWS_PER_HOUR rows an hour: further models are added up as (other)', async () => {
    const store = new MemoryUsageStore({ retentionHours: 24, now: () => T0 });
    for (let i = 0; i < MAX_ROWS_PER_HOUR + 5; i++)
      store.record('alice', `model-${i}`, counts({ requests: 1 }));
    const rows = await store.read(T0, T0 + HOUR_MS);
    assert.equal(rows.length, MAX_ROWS_PER_HOUR + 1);
    assert.equal(rows.find((r) => r.model === OTHER_MODEL)?.requests, 5);
    assert.equal(
      rows.reduce((sum, r) => sum + r.requests, 0),
      MAX_ROWS_PER_HOUR + 5,
    );
  });

  it('keeps the hours of the retention only', async () => {
    let now = T0;
    const store = new MemoryUsageStore({ retentionHours: 48, now: () => now });
    store.record('alice', 'm', counts({ requests: 1 }));
    now = T0 + 47 * HOUR_MS;
    assert.equal((await store.read(0, now + HOUR_MS)).length, 1, 'the 48th hour is still kept');
    now = T0 + 48 * HOUR_MS;
    assert.equal((await store.read(0, now + HOUR_MS)).length, 0, 'past the retention it is gone');
  });
});
