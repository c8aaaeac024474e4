import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { createGuard, type Admission, type Guard } from '../../src/limits/guard.ts';
import type { LimitSettings, RedisErrorPolicy } from '../../src/limits/limits.ts';
import { RedisLimitStore } from '../../src/limits/redis-store.ts';
import { createUpstreamGate } from '../../src/limits/upstream-gate.ts';
import { PrivateRedis, describeIf, redisServerInstalled } from '../helpers/redis.ts';

const COMMAND_TIMEOUT_MS = 150;
/** A call may take the command timeout plus scheduling slack on a busy 2-core machine, never more. */
const MAX_CALL_MS = COMMAND_TIMEOUT_MS + 350;

function settings(policy: RedisErrorPolicy): LimitSettings {
  return {
    defaults: { rpm: 1000, tpm: 0, daily: 0, streams: 2, usd_daily: 0, usd_monthly: 0 },
    maxUpstreamConcurrency: 0,
    redisUrl: 'unused',
    redisErrorPolicy: policy,
    redisTimeoutMs: 200,
  };
}

async function timed(admission: Promise<Admission>): Promise<{ admission: Admission; ms: number }> {
  const started = performance.now();
  const result = await admission;
  return { admission: result, ms: performance.now() - started };
}

describeIf(
  redisServerInstalled(),
  'redis-server is not installed',
  'Redis outage (a private redis-server, killed and frozen)',
  () => {
    let redis: PrivateRedis;
    let store: RedisLimitStore;

    /** A fresh pair of guards on the one store (fail open, fail closed), with their own error counts. */
    function guards(): { open: Guard; closed: Guard; errors: Error[]; warnings: object[] } {
      const errors: Error[] = [];
      const warnings: object[] = [];
      const common = {
        keyring: null,
        store,
        gate: createUpstreamGate({ max: 0 }),
        logger: { warn: (details: object) => warnings.push(details) },
        onRedisError: (error: Error) => errors.push(error),
      };
      return {
        open: createGuard({ ...common, limits: settings('open') }),
        closed: createGuard({ ...common, limits: settings('closed') }),
        errors,
        warnings,
      };
    }

    before(async () => {
      redis = await PrivateRedis.start();
      store = new RedisLimitStore({ url: redis.url, commandTimeoutMs: COMMAND_TIMEOUT_MS });
      assert.equal(await store.waitUntilReady(5_000), true);
    });

    after(async () => {
      await store.close();
      await redis.stop();
    });

    it('while Redis answers: admitted with rate-limit headers', async () => {
      const { open, errors } = guards();
      const admission = await open.admit(null, 0);
      assert.equal(admission.ok, true);
      assert.equal(admission.headers['ratelimit-limit'], '1000');
      await admission.lease.settle();
      assert.equal(errors.length, 0);
    });

    it('Redis frozen: no call waits beyond the command timeout; open allows, closed refuses', async () => {
      const { open, closed, errors } = guards();
      redis.pause();
      try {
        const first = await timed(open.admit(null, 0));
        assert.equal(first.admission.ok, true, 'fail open admits');
        assert.deepEqual(first.admission.headers, {}, 'no limit state to report');
        assert.ok(first.ms >= COMMAND_TIMEOUT_MS - 20 && first.ms < MAX_CALL_MS, `waited ${first.ms} ms`);
        await first.admission.lease.settle({ output_tokens: 5 });

        const refused = await timed(closed.admit(null, 0));
        assert.ok(refused.ms < MAX_CALL_MS, `waited ${refused.ms} ms`);
        assert.equal(refused.admission.ok, false);
        assert.equal(refused.admission.status, 503);
        assert.equal(refused.admission.reason, 'limits_unavailable');
        assert.equal(refused.admission.headers['retry-after'], '1');
        assert.ok(errors.length >= 2, `errors counted: ${errors.length}`);
        assert.equal(store.healthy(), true, 'a frozen server still looks connected');
      } finally {
        redis.resume();
      }
      // Thawed: the same connection serves again, and the two admissions whose replies timed out
      // (which Redis ran on waking) were undone: they hold no stream slot (streams=2) and no
      // request (2 of 1000 counted: the one in the first test and this one).
      const thawed = await open.admit(null, 0);
      assert.equal(thawed.ok, true);
      assert.equal(thawed.headers['ratelimit-limit'], '1000');
      assert.equal(thawed.headers['ratelimit-remaining'], '998');
      await thawed.lease.settle();
    });

    it('Redis killed: every call fails fast, open allows and counts, closed refuses, one warning', async () => {
      await redis.kill();
      const deadline = Date.now() + 2_000;
      while (store.healthy() && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(store.healthy(), false, 'the store reports itself unhealthy (for /readyz)');
      const { open, closed, errors, warnings } = guards();
      const results = await Promise.all(Array.from({ length: 20 }, () => timed(open.admit(null, 100))));
      for (const { admission, ms } of results) {
        assert.equal(admission.ok, true);
        assert.ok(ms < MAX_CALL_MS, `waited ${ms} ms`);
        await admission.lease.settle({ input_tokens: 1 });
      }
      assert.ok(errors.length >= 20, `admissions counted as Redis errors: ${errors.length}`);
      assert.equal(warnings.length, 1, 'warnings are rate-limited');

      const refused = await timed(closed.admit(null, 0));
      assert.equal(refused.admission.ok, false);
      assert.ok(refused.ms < MAX_CALL_MS);
    });

    it(
      'Redis back (empty, scripts unknown): the store reconnects by itself and limits apply again',
      { timeout: 15_000 },
      async () => {
        await redis.restart();
        assert.equal(await store.waitUntilReady(5_000), true, 'reconnected');
        const { open, closed, errors } = guards();
        const admissions = [
          await open.admit(null, 0),
          await closed.admit(null, 0),
          await closed.admit(null, 0),
        ];
        assert.deepEqual(
          admissions.map((a) => a.ok),
          [true, true, false],
        );
        const denied = admissions[2];
        assert.equal(denied?.ok === false && denied.reason, 'streams', 'streams=2 enforced from Redis again');
        assert.equal(errors.length, 0);
        for (const admission of admissions) if (admission.ok) await admission.lease.settle();
        const again = await closed.admit(null, 0);
        assert.equal(again.ok, true, 'settle freed the stream slots');
        await again.lease.settle();
      },
    );
  },
);
