/**
 * A dollar budget across two real service processes sharing one Redis: a burst written at once over
 * pre-opened sockets to both cannot spend more than the budget, since every request reserves its
 * worst-case cost in the same admission script as the token limits.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../../src/mock/fake-upstream.ts';
import { SHARED_REDIS_URL, deleteKeys, describeIf, redisReachable } from '../helpers/redis.ts';
import { connected, rawConnection } from '../helpers/raw-http.ts';
import { ask, bearer, expectAnswer } from '../helpers/routes.ts';
import { waitFor } from '../helpers/wait.ts';
import { startService, type ServiceProcess } from '../helpers/service-process.ts';

const reachable = await redisReachable();

const MAX_TOKENS = 9_900;
const BURST = 40;
const BUDGET_NANO = 1_000_000_000; // BUDGET_USD_DAILY=1

describeIf(
  reachable,
  `Redis is not reachable at ${SHARED_REDIS_URL}`,
  'a dollar budget shared by two service processes',
  () => {
    const name = `usd-replicas-${randomUUID()}`;
    const key = `usd-replicas-key-${randomUUID()}`;
    const warmName = `usd-warm-${randomUUID()}`;
    const warmKey = `usd-warm-key-${randomUUID()}`;
    const body = JSON.stringify({
      model: 'claude-sonnet-5',
      max_tokens: MAX_TOKENS,
      messages: [{ role: 'user', content: 'Hi' }],
    });
    const bytes = Buffer.byteLength(body);
    // The worst case the service reserves (claude-sonnet-5): every body byte as a prompt token at the
    // 1-hour cache-write price ($4), max_tokens at the output price ($10), per million tokens.
    const worstNano = bytes * 4000 + MAX_TOKENS * 10_000;
    let fake: FakeUpstream;
    let services: ServiceProcess[] = [];

    before(async () => {
      fake = await startFakeUpstream();
      // Each answer costs exactly its worst case: settling gives nothing back during the burst.
      fake.setScenario(() => ({
        kind: 'message',
        usage: {
          input_tokens: 0,
          cache_creation_input_tokens: bytes,
          cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: bytes },
          output_tokens: MAX_TOKENS,
        },
      }));
      const env = {
        ANTHROPIC_API_KEY: 'k',
        ANTHROPIC_BASE_URL: fake.url,
        REDIS_URL: SHARED_REDIS_URL,
        SERVICE_API_KEYS: `${name}:${key},${warmName}:${warmKey}`,
        BUDGET_USD_DAILY: '1',
        // Exactness is the point, not the timeout: a burst on a loaded machine must not fail open.
        REDIS_TIMEOUT_MS: '5000',
      };
      const started = await Promise.allSettled([startService(env), startService(env)]);
      services = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      const failure = started.find((result) => result.status === 'rejected');
      if (failure) throw failure.reason;
    });
    after(async () => {
      try {
        await Promise.all(services.map((service) => service.stop()));
      } finally {
        await fake.close();
        await deleteKeys(SHARED_REDIS_URL, `llmc:{${name}}:`);
        await deleteKeys(SHARED_REDIS_URL, `llmc:{${warmName}}:`);
      }
    });

    it(
      `a burst of ${BURST} over pre-opened sockets spends at most the budget`,
      { timeout: 60_000 },
      async (context) => {
        for (const service of services) {
          await waitFor(
            async () => (await fetch(`${service.url}/readyz`)).status === 200,
            'Redis to be ready',
          );
          // Warm up under another key (scripts loaded, code compiled), so no admission misses Redis's timeout.
          await expectAnswer(
            'messages',
            await ask(service.url, 'messages', { headers: bearer(warmKey), stream: false }),
            false,
          );
        }
        const upstreamBefore = fake.requests.length;
        const request = Buffer.from(
          'POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n' +
            `anthropic-version: 2023-06-01\r\nauthorization: Bearer ${key}\r\n` +
            `content-length: ${bytes}\r\nconnection: close\r\n\r\n${body}`,
        );
        const connections = Array.from({ length: BURST }, (_, i) =>
          rawConnection(services[i % 2]?.url ?? ''),
        );
        await Promise.all(connections.map((c) => connected(c.socket)));
        for (const c of connections) c.socket.write(request);
        const answers = await Promise.all(connections.map((c) => c.answer));
        const admitted = answers.filter((a) => a.status === 200);
        const refused = answers.filter((a) => a.status === 429);
        context.diagnostic(`admitted ${admitted.length}, refused ${refused.length}`);
        assert.equal(admitted.length + refused.length, BURST, JSON.stringify(answers.map((a) => a.status)));
        // Every admission was counted (none let through by a Redis failure: each carries RateLimit-*).
        assert.ok(admitted.every((a) => a.headers['ratelimit-limit'] === '100'));
        assert.equal(admitted.length, Math.floor(BUDGET_NANO / worstNano));
        assert.ok(admitted.length * worstNano <= BUDGET_NANO, 'spent at most the budget');
        for (const answer of refused) {
          assert.match(answer.body, /Daily budget of \$1 used up/);
          assert.ok(Number(answer.headers['retry-after']) >= 1);
        }
        assert.equal(fake.requests.length - upstreamBefore, admitted.length, 'upstream calls');
        for (const service of services) assert.equal(service.child.exitCode, null);
      },
    );
  },
);
