/**
 * The usage store in Redis: two replicas (two stores, two connections) add to the same hourly hashes,
 * so either reads the sum; each hash expires when its hour leaves the retention.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Redis } from 'ioredis';
import {
  HOUR_MS,
  RedisUsageStore,
  emptyCounts,
  hourOf,
  type UsageRow,
} from '../../src/reports/usage-store.ts';
import {
  PrivateRedis,
  SHARED_REDIS_URL,
  deleteKeys,
  describeIf,
  redisReachable,
  redisServerInstalled,
  uniquePrefix,
} from '../helpers/redis.ts';
import { waitFor } from '../helpers/wait.ts';

const reachable = await redisReachable();
// The current hour: Redis expires the hashes on its own clock.
const T0 = hourOf(Date.now());

describeIf(reachable, `Redis is not reachable at ${SHARED_REDIS_URL}`, 'usage in Redis', () => {
  const prefix = uniquePrefix();
  let now = T0 + 60_000;
  const clock = () => now;
  const errors: Error[] = [];
  const replica = () =>
    new RedisUsageStore({
      url: SHARED_REDIS_URL,
      prefix,
      retentionHours: 48,
      now: clock,
      onError: (error) => errors.push(error),
    });
  const a = replica();
  const b = replica();
  let client: Redis;

  before(async () => {
    client = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 0 });
    assert.ok(await a.waitUntilReady(5_000));
    assert.ok(await b.waitUntilReady(5_000));
  });
  after(async () => {
    await a.close();
    await b.close();
    client.disconnect();
    await deleteKeys(SHARED_REDIS_URL, prefix);
  });

  const total = (rows: UsageRow[], key: string) =>
    rows.filter((r) => r.key === key).reduce((sum, r) => sum + r.requests, 0);

  it('two replicas add to one report, exactly (cost in integer pico-dollars beyond 2^53)', async () => {
    const big = 2n ** 60n + 7n;
    for (let i = 0; i < 50; i++) {
      a.record('alice', 'claude-x', { ...emptyCounts(), requests: 1, output: 2, costPicoUsd: 3n });
      b.record('alice', 'claude-x', { ...emptyCounts(), requests: 1, output: 2, costPicoUsd: 3n });
    }
    b.record('bob', 'claude:y:z', { ...emptyCounts(), requests: 1, cacheWrite1h: 9, costPicoUsd: big });
    b.record('carol', 'claude-x', { ...emptyCounts(), requests: 1, unpricedTokens: 11 });
    await waitFor(async () => total(await a.read(T0, T0 + HOUR_MS), 'alice') === 100, 'the 100 records');
    await waitFor(async () => total(await a.read(T0, T0 + HOUR_MS), 'carol') === 1, 'the last record');
    for (const store of [a, b]) {
      const rows = await store.read(T0, T0 + HOUR_MS);
      const alice = rows.find((r) => r.key === 'alice');
      assert.deepEqual(alice, {
        hourMs: T0,
        key: 'alice',
        model: 'claude-x',
        ...emptyCounts(),
        requests: 100,
        output: 200,
        costPicoUsd: 300n,
      });
      const bob = rows.find((r) => r.key === 'bob');
      assert.equal(bob?.model, 'claude:y:z', 'a model id with colons comes back whole');
      assert.equal(bob.cacheWrite1h, 9);
      assert.equal(bob.costPicoUsd, big);
      assert.equal(rows.find((r) => r.key === 'carol')?.unpricedTokens, 11);
    }
    assert.deepEqual(errors, []);
  });

  it('one hash per hour, expiring USAGE_RETENTION_DAYS after its hour', async () => {
    const keys = await client.keys(`${prefix}*`);
    assert.deepEqual(keys, [`${prefix}usage:${new Date(T0).toISOString().slice(0, 13)}`]);
    const expiresAt = await client.pexpiretime(keys[0] as string);
    assert.equal(expiresAt, T0 + 49 * HOUR_MS);
  });

  it('hours past the retention are not read, even before Redis expires them', async () => {
    now = T0 + 47 * HOUR_MS;
    assert.ok((await a.read(T0, now)).length > 0);
    now = T0 + 48 * HOUR_MS;
    assert.deepEqual(await a.read(T0, now), []);
  });
});

describeIf(redisServerInstalled(), 'redis-server is not installed', 'usage while Redis is away', () => {
  let redis: PrivateRedis;
  let store: RedisUsageStore;
  before(async () => {
    redis = await PrivateRedis.start();
    store = new RedisUsageStore({ url: redis.url, retentionHours: 24 });
    assert.ok(await store.waitUntilReady(5_000));
  });
  after(async () => {
    await store.close();
    await redis.stop();
  });

  it('answers counted while Redis is down wait in memory and are written when it is back', async () => {
    const now = hourOf(Date.now());
    await redis.kill();
    await waitFor(() => !store.healthy(), 'the store to see Redis gone');
    for (let i = 0; i < 3; i++)
      store.record('alice', 'claude-x', { ...emptyCounts(), requests: 1, output: 5 });
    store.record('bob', 'claude-x', { ...emptyCounts(), requests: 1, costPicoUsd: 7n });
    await redis.restart();
    const read = async () => {
      try {
        return await store.read(now, now + HOUR_MS);
      } catch {
        return [];
      }
    };
    await waitFor(async () => (await read()).length === 2, 'the waiting answers in Redis');
    const rows = await read();
    assert.deepEqual(rows.map((r) => [r.key, r.requests, r.output, r.costPicoUsd]).sort(), [
      ['alice', 3, 15, 0n],
      ['bob', 1, 0, 7n],
    ]);
    assert.equal(store.dropped, 0);
  });
});
