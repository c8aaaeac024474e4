import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { LimitValues } from '../../src/limits/limits.ts';
import { RedisLimitStore } from '../../src/limits/redis-store.ts';
import { LEASE_TTL_MS, T0, limitStoreBehaviour } from '../helpers/limit-store-behaviour.ts';
import {
  SHARED_REDIS_URL,
  countKeys,
  deleteKeys,
  describeIf,
  redisReachable,
  uniquePrefix,
} from '../helpers/redis.ts';

const reachable = await redisReachable();
const prefix = uniquePrefix();
const NONE: LimitValues = { rpm: 0, tpm: 0, daily: 0, streams: 0, usd_daily: 0, usd_monthly: 0 };

async function connect(options: { leaseTtlMs?: number } = {}): Promise<RedisLimitStore> {
  const store = new RedisLimitStore({ url: SHARED_REDIS_URL, prefix, commandTimeoutMs: 2_000, ...options });
  assert.equal(await store.waitUntilReady(3_000), true, 'connected');
  return store;
}

/** `count` admissions at once, spread over the stores, all at the same instant. */
async function admitAtOnce(
  stores: readonly RedisLimitStore[],
  identity: string,
  limits: LimitValues,
  count: number,
  reserve = 0,
) {
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      (stores[i % stores.length] as RedisLimitStore).admit({
        identity,
        limits,
        nowMs: T0,
        reserveTokens: reserve,
        leaseId: `lease-${i}`,
      }),
    ),
  );
  const tally = { allowed: 0, denied: 0, unavailable: 0 };
  for (const result of results) tally[result.outcome]++;
  return tally;
}

describeIf(reachable, `Redis is not reachable at ${SHARED_REDIS_URL}`, 'Redis limit store', () => {
  after(() => deleteKeys(SHARED_REDIS_URL, prefix));

  describe('behaves exactly like the memory store', () => {
    limitStoreBehaviour((options) => connect(options));
  });

  describe('two connections, one limit', () => {
    let stores: RedisLimitStore[] = [];
    before(async () => {
      stores = [await connect(), await connect()];
    });
    after(() => Promise.all(stores.map((store) => store.close())));

    it('rpm=50: 200 concurrent admissions over two connections admit exactly 50', async () => {
      assert.deepEqual(await admitAtOnce(stores, 'conc-rpm', { ...NONE, rpm: 50 }, 200), {
        allowed: 50,
        denied: 150,
        unavailable: 0,
      });
    });

    it('tpm=1000 reserving 30 each: exactly 33 admitted', async () => {
      assert.deepEqual(await admitAtOnce(stores, 'conc-tpm', { ...NONE, tpm: 1000 }, 100, 30), {
        allowed: 33,
        denied: 67,
        unavailable: 0,
      });
    });

    it('streams=7: exactly 7 leases out of 60 at once', async () => {
      assert.deepEqual(await admitAtOnce(stores, 'conc-streams', { ...NONE, streams: 7 }, 60), {
        allowed: 7,
        denied: 53,
        unavailable: 0,
      });
    });
  });

  it('namespaces every key under the prefix and gives each a TTL', async () => {
    const store = await connect({ leaseTtlMs: LEASE_TTL_MS });
    try {
      const limits = { rpm: 5, tpm: 500, daily: 5000, streams: 2, usd_daily: 0, usd_monthly: 0 };
      const result = await store.admit({
        identity: 'ttl-check',
        limits,
        nowMs: Date.now(),
        reserveTokens: 10,
        leaseId: 'lease',
      });
      assert.equal(result.outcome, 'allowed');
      const client = new Redis(SHARED_REDIS_URL);
      try {
        const keys = (await client.keys(`${prefix}{ttl-check}:*`)).sort();
        assert.deepEqual(
          keys.map((key) => key.slice(prefix.length).replace(/\d+$/, 'N')),
          [
            '{ttl-check}:admit:lease',
            '{ttl-check}:day:N',
            '{ttl-check}:rpm:N',
            '{ttl-check}:streams',
            '{ttl-check}:tpm:N',
          ],
        );
        for (const key of keys) {
          const ttl = await client.pttl(key);
          assert.ok(ttl > 0 && ttl <= 86_460_000, `${key} has a TTL (${ttl})`);
        }
      } finally {
        client.disconnect();
      }
    } finally {
      await store.close();
    }
    assert.ok((await countKeys(SHARED_REDIS_URL, prefix)) > 0);
  });
});
