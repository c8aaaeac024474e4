/**
 * Real service processes (`node dist/server.js`) sharing one Redis: one limit across replicas, and
 * what a Redis outage does to requests (fail open / closed), to /readyz and to recovery.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../../src/mock/fake-upstream.ts';
import {
  PrivateRedis,
  SHARED_REDIS_URL,
  deleteUsageOf,
  deleteKeys,
  describeIf,
  redisReachable,
  redisServerInstalled,
} from '../helpers/redis.ts';
import {
  ROUTES,
  ask,
  bearer,
  expectAnswer,
  expectError,
  metricValue,
  rateLimitOf,
  scrapeMetrics,
  type RouteName,
} from '../helpers/routes.ts';
import { awayFromMinuteBoundary } from '../helpers/clock.ts';
import { waitFor } from '../helpers/wait.ts';
import { startService, type ServiceProcess } from '../helpers/service-process.ts';

/** A request that has not answered by then counts as hung. */
const ANSWER_WITHIN_MS = 5_000;

const reachable = await redisReachable();

async function readyz(url: string): Promise<number> {
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
  await res.arrayBuffer();
  return res.status;
}

function replica(fake: FakeUpstream, env: Record<string, string>): Promise<ServiceProcess> {
  return startService({ ANTHROPIC_API_KEY: 'k', ANTHROPIC_BASE_URL: fake.url, ...env });
}

/**
 * Starts one replica per environment. Should one fail to start (e.g. a very busy machine), the
 * others are stopped before it throws: a process left running would keep this file from exiting.
 */
async function replicas(
  fake: FakeUpstream,
  envs: readonly Record<string, string>[],
): Promise<ServiceProcess[]> {
  const results = await Promise.allSettled(envs.map((env) => replica(fake, env)));
  const started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failure = results.find((result) => result.status === 'rejected');
  if (failure) {
    await Promise.all(started.map((service) => service.stop()));
    throw failure.reason;
  }
  return started;
}

/** `llmc_redis_errors_total` summed over the processes. */
async function redisErrors(services: readonly ServiceProcess[]): Promise<number> {
  let total = 0;
  for (const service of services)
    total += metricValue(await scrapeMetrics(service.url), 'llmc_redis_errors_total');
  return total;
}

/** Stops the service and checks it exited cleanly (it never crashed along the way). */
async function stopCleanly(service: ServiceProcess): Promise<void> {
  assert.equal(service.child.exitCode, null, 'the service died');
  const exit = await service.stop();
  assert.equal(exit.code, 0, exit.stderr);
  assert.doesNotMatch(exit.stderr, /uncaught|unhandled/i);
}

describeIf(
  reachable,
  `Redis is not reachable at ${SHARED_REDIS_URL}`,
  'two service processes sharing one Redis',
  () => {
    // Redis keys are namespaced by key name (and window): a name of its own isolates this run.
    const name = `replicas-${randomUUID()}`;
    const key = `replicas-key-${randomUUID()}`;
    const warmName = `warm-${randomUUID()}`;
    const warmKey = `warm-key-${randomUUID()}`;
    let fake: FakeUpstream;
    let services: ServiceProcess[] = [];

    before(async () => {
      fake = await startFakeUpstream();
      const env = {
        REDIS_URL: SHARED_REDIS_URL,
        SERVICE_API_KEYS: `${name}:${key},${warmName}:${warmKey}`,
        RATE_LIMIT_RPM: '20',
        // Exactness is under test here, not the fail-open path: a busy machine must not turn a slow
        // Redis call into a fail-open admission.
        REDIS_TIMEOUT_MS: '5000',
      };
      services = await replicas(fake, [env, env]);
    });
    after(async () => {
      try {
        await Promise.all(services.map((service) => service.stop()));
      } finally {
        await fake.close();
        await deleteKeys(SHARED_REDIS_URL, `llmc:{${name}}:`);
        await deleteKeys(SHARED_REDIS_URL, `llmc:{${warmName}}:`);
        await deleteUsageOf(SHARED_REDIS_URL, [name, warmName]);
      }
    });

    it(
      '60 concurrent requests spread over both: exactly 20 succeed, 40 get 429',
      { timeout: 60_000 },
      async (context) => {
        for (const service of services)
          await waitFor(async () => (await readyz(service.url)) === 200, 'Redis to be ready');
        // Warm up each process under another key (scripts loaded, code paths compiled): a cold process
        // on a busy machine can miss the 200 ms Redis timeout, and fail open would then let a request by.
        for (const service of services) {
          for (const route of ROUTES)
            await expectAnswer(route, await ask(service.url, route, { headers: bearer(warmKey) }));
        }
        const upstreamBefore = fake.requests.length;
        // Exact counts need no window boundary early in the burst: past one, the sliding window keeps
        // the count exact only for the next 60/20 = 3 s. These are real processes, which read the real
        // clock (the in-process tests inject one instead): wait for the next minute, but only when less
        // than 10 s are left (1 run in 6). The burst took 6-10 s on a 2-core machine at load 17-20.
        await awayFromMinuteBoundary(10_000);
        const burstStarted = Date.now();
        const errorsBefore = await redisErrors(services);
        const results = await Promise.all(
          Array.from({ length: 60 }, async (_, i) => {
            const route = ROUTES[i % 3] as RouteName;
            const server = i % 2;
            const res = await ask(services[server]?.url ?? '', route, {
              headers: bearer(key),
              stream: i % 4 < 2,
              signal: AbortSignal.timeout(30_000),
            });
            if (res.status === 200) {
              await expectAnswer(route, res, i % 4 < 2);
              const remaining = res.headers.get('ratelimit-remaining');
              return { server, status: 200, remaining: remaining === null ? -1 : Number(remaining) };
            }
            const refused = await expectError(route, res, 429, 'rate_limit_error');
            assert.deepEqual(
              [rateLimitOf(refused.headers).limit, rateLimitOf(refused.headers).remaining],
              [20, 0],
            );
            return { server, status: 429, remaining: -1 };
          }),
        );
        context.diagnostic(`the burst took ${Date.now() - burstStarted} ms`);
        const ok = results.filter((r) => r.status === 200);
        // A 200 without RateLimit-* was let through uncounted (fail open after a Redis timeout).
        const errors = (await redisErrors(services)) - errorsBefore;
        context.diagnostic(`Redis calls that failed or timed out during the burst: ${errors}`);
        const uncounted = ok.filter((r) => r.remaining === -1).length;
        if (uncounted > 0) {
          const warnings = services.flatMap((service) =>
            service.logLines().filter((line) => line.level === 40),
          );
          assert.fail(
            `${uncounted} requests were let through uncounted; Redis errors: ${errors}; ${JSON.stringify(warnings)}`,
          );
        }
        assert.equal(ok.length, 20, `admitted ${ok.length}`);
        assert.equal(results.filter((r) => r.status === 429).length, 40);
        // One atomic counter: each admission saw a different count, 19 left down to 0.
        assert.deepEqual(
          ok.map((r) => r.remaining).sort((a, b) => a - b),
          Array.from({ length: 20 }, (_, i) => i),
        );
        assert.equal(fake.requests.length - upstreamBefore, 20, 'upstream calls');
        const rejections = await Promise.all(
          services.map(async (service) =>
            metricValue(await scrapeMetrics(service.url), 'llmc_rate_limit_rejections_total', {
              key: name,
              reason: 'rpm',
            }),
          ),
        );
        assert.equal(
          rejections.reduce((a, b) => a + b, 0),
          40,
          `per process: ${rejections.join(', ')}`,
        );
        context.diagnostic(
          `admitted per process: ${[0, 1].map((server) => ok.filter((r) => r.server === server).length).join(', ')}`,
        );
        for (const service of services) assert.equal(service.child.exitCode, null);
      },
    );
  },
);

describeIf(
  redisServerInstalled(),
  'redis-server is not installed',
  'Redis stopped mid-run, under real service processes',
  () => {
    let redis: PrivateRedis;
    let fake: FakeUpstream;
    let open: ServiceProcess;
    let closed: ServiceProcess;
    let running: ServiceProcess[] = [];
    const OPEN_KEY = 'open-key-0123456789abcdef';
    const CLOSED_KEY = 'closed-key-0123456789abcdef';

    before(async () => {
      redis = await PrivateRedis.start();
      fake = await startFakeUpstream();
      const env = { REDIS_URL: redis.url, RATE_LIMIT_RPM: '5' };
      running = await replicas(fake, [
        { ...env, SERVICE_API_KEYS: `fail-open:${OPEN_KEY}`, RATE_LIMIT_ON_REDIS_ERROR: 'open' },
        { ...env, SERVICE_API_KEYS: `fail-closed:${CLOSED_KEY}`, RATE_LIMIT_ON_REDIS_ERROR: 'closed' },
      ]);
      [open, closed] = running as [ServiceProcess, ServiceProcess];
    });
    // Whatever failed before, nothing is left running (a live child or server would keep this file from exiting).
    after(async () => {
      try {
        await Promise.all(running.map((service) => service.stop()));
      } finally {
        try {
          await fake.close();
        } finally {
          await redis.stop();
        }
      }
    });

    const askOpen = (route: RouteName, i: number): Promise<Response> =>
      ask(open.url, route, {
        headers: bearer(OPEN_KEY),
        stream: i % 2 === 0,
        signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
      });
    const askClosed = (route: RouteName): Promise<Response> =>
      ask(closed.url, route, { headers: bearer(CLOSED_KEY), signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });

    /** With Redis unusable: fail open answers every request (beyond the limit of 5), fail closed refuses with 503. */
    async function checkOutage(): Promise<void> {
      for (let i = 0; i < 7; i++) {
        const route = ROUTES[i % 3] as RouteName;
        const res = await askOpen(route, i);
        assert.equal(res.headers.get('ratelimit-limit'), null, 'no limit state to report');
        await expectAnswer(route, res, i % 2 === 0);
      }
      for (const route of ROUTES) {
        const refused = await expectError(route, await askClosed(route), 503, 'overloaded_error');
        assert.match(refused.message, /Rate limiting is unavailable/);
        assert.equal(refused.headers.get('retry-after'), '1');
      }
    }

    it('while Redis answers: ready, and limited', { timeout: 30_000 }, async () => {
      for (const service of [open, closed])
        await waitFor(async () => (await readyz(service.url)) === 200, 'Redis to be ready');
      const first = await askOpen('query', 0);
      assert.deepEqual([rateLimitOf(first.headers).limit, rateLimitOf(first.headers).remaining], [5, 4]);
      await expectAnswer('query', first);
      await expectAnswer('chat', await askClosed('chat'));
      assert.equal(metricValue(await scrapeMetrics(open.url), 'llmc_redis_errors_total'), 0);
    });

    it(
      'Redis frozen (connected, silent): no request hangs; open answers, closed refuses',
      { timeout: 60_000 },
      async () => {
        redis.pause();
        try {
          await checkOutage();
        } finally {
          redis.resume();
        }
        assert.ok(metricValue(await scrapeMetrics(open.url), 'llmc_redis_errors_total') >= 7);
      },
    );

    it(
      'Redis killed: /readyz 503, open answers and counts Redis errors, closed refuses; nothing crashes',
      { timeout: 60_000 },
      async () => {
        const errorsBefore = metricValue(await scrapeMetrics(open.url), 'llmc_redis_errors_total');
        const rejectedBefore = metricValue(
          await scrapeMetrics(closed.url),
          'llmc_rate_limit_rejections_total',
          { reason: 'limits_unavailable' },
        );
        await redis.kill();
        for (const service of [open, closed])
          await waitFor(async () => (await readyz(service.url)) === 503, '/readyz to report Redis down');
        await checkOutage();
        const errorsAfter = metricValue(await scrapeMetrics(open.url), 'llmc_redis_errors_total');
        assert.ok(errorsAfter >= errorsBefore + 7, `Redis errors ${errorsBefore} → ${errorsAfter}`);
        const rejected = metricValue(await scrapeMetrics(closed.url), 'llmc_rate_limit_rejections_total', {
          key: 'fail-closed',
          reason: 'limits_unavailable',
        });
        assert.equal(rejected - rejectedBefore, 3);
        assert.equal(open.child.exitCode, null);
        assert.equal(closed.child.exitCode, null);
        const warnings = open
          .logLines()
          .filter(
            (line) => typeof line.msg === 'string' && line.msg.includes('rate-limit store unavailable'),
          );
        assert.ok(warnings.length >= 1, 'a warning was logged');
        assert.ok(warnings.every((line) => line.level === 40));
      },
    );

    it(
      'Redis back: both recover by themselves (/readyz 200) and the limit applies again',
      { timeout: 60_000 },
      async () => {
        await redis.restart();
        for (const service of [open, closed])
          await waitFor(async () => (await readyz(service.url)) === 200, '/readyz to recover');
        // The restarted Redis is empty: 5 requests this minute, then 429. Past a window boundary the
        // count stays exact for 60/5 = 12 s: wait for the next minute only when less than 5 s are left
        // (1 run in 12).
        await awayFromMinuteBoundary(5_000);
        for (const [service, headers] of [
          [open, bearer(OPEN_KEY)],
          [closed, bearer(CLOSED_KEY)],
        ] as const) {
          const statuses: number[] = [];
          for (let i = 0; i < 6; i++) {
            const route = ROUTES[i % 3] as RouteName;
            const res = await ask(service.url, route, {
              headers,
              stream: false,
              signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
            });
            await res.arrayBuffer();
            statuses.push(res.status);
            if (res.status === 200) assert.equal(rateLimitOf(res.headers).remaining, 4 - i);
          }
          assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
        }
        await stopCleanly(open);
        await stopCleanly(closed);
      },
    );
  },
);
