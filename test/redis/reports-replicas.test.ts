/**
 * Two replicas sharing one Redis: answers served by either are in the one report that either serves.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { RedisUsageStore } from '../../src/reports/usage-store.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { SHARED_REDIS_URL, deleteKeys, describeIf, redisReachable, uniquePrefix } from '../helpers/redis.ts';
import { ask, bearer } from '../helpers/routes.ts';
import { waitFor } from '../helpers/wait.ts';

const reachable = await redisReachable();
const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';
const BOSS = 'boss-key-0123456789abcdef';

interface Report {
  data: { results: Record<string, unknown>[] }[];
}

describeIf(reachable, `Redis is not reachable at ${SHARED_REDIS_URL}`, 'reports across two replicas', () => {
  const prefix = uniquePrefix();
  const stores: RedisUsageStore[] = [];
  const replicas: Harness[] = [];

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const usage = new RedisUsageStore({ url: SHARED_REDIS_URL, prefix, retentionHours: 24 });
      assert.ok(await usage.waitUntilReady(5_000));
      stores.push(usage);
      replicas.push(
        await startHarness(
          { SERVICE_API_KEYS: `alice:${ALICE},bob:${BOB}`, ADMIN_API_KEYS: `boss:${BOSS}` },
          { usage },
        ),
      );
    }
  });
  after(async () => {
    await Promise.all(replicas.map((h) => h.close()));
    await Promise.all(stores.map((s) => s.close()));
    await deleteKeys(SHARED_REDIS_URL, prefix);
  });

  const report = async (h: Harness, key: string, query: string): Promise<Record<string, unknown>[]> => {
    const res = await fetch(`${h.url}/v1/organizations/usage_report/messages?${query}`, {
      headers: bearer(key),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as Report).data.flatMap((b) => b.results);
  };

  it('alice on replica 1, bob on replica 2: either replica reports both to an admin, each key its own', async () => {
    const [one, two] = replicas as [Harness, Harness];
    for (const [h, key] of [
      [one, ALICE],
      [one, ALICE],
      [two, BOB],
      [two, ALICE],
    ] as const) {
      const res = await ask(h.url, 'messages', { headers: bearer(key), stream: false });
      assert.equal(res.status, 200);
      await res.text();
    }
    const query = `starting_at=${new Date().toISOString()}&group_by[]=api_key_id`;
    const requests = (rows: Record<string, unknown>[]) => rows.map((r) => [r.api_key_id, r.request_count]);
    await waitFor(
      async () => JSON.stringify(requests(await report(two, BOSS, query))) === '[["alice",3],["bob",1]]',
      'the four answers in the shared report',
    );
    assert.deepEqual(requests(await report(one, BOSS, query)), [
      ['alice', 3],
      ['bob', 1],
    ]);
    assert.deepEqual(requests(await report(one, BOB, query)), [['bob', 1]]);
    assert.deepEqual(requests(await report(two, ALICE, query)), [['alice', 3]]);
  });
});
