/**
 * Resumable answers across replicas: two real service processes (`node dist/server.js`) sharing one
 * Redis. A client cut on one replica resumes on the other, a cancel from either stops the upstream,
 * a killed producer does not leave its followers hanging, and a Redis outage gets a clear 503.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../../src/mock/fake-upstream.ts';
import {
  PrivateRedis,
  SHARED_REDIS_URL,
  deleteKeys,
  describeIf,
  redisReachable,
  redisServerInstalled,
} from '../helpers/redis.ts';
import { startService, type ServiceProcess } from '../helpers/service-process.ts';
import { SseClient, joinedText, postQuery, type IdEvent } from '../helpers/sse-client.ts';
import { closedWithin, upstreamRequest, waitFor, within } from '../helpers/wait.ts';

const reachable = await redisReachable();

const WORDS = Array.from({ length: 30 }, (_, i) => `w${i} `);
const FULL = WORDS.join('');

function ids(events: readonly IdEvent[]): (number | undefined)[] {
  return events.map((e) => e.id);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function follow(service: ServiceProcess, id: string, headers: Record<string, string> = {}): SseClient {
  return new SseClient(`${service.url}/llm/answers/${id}/events`, { headers });
}

async function snapshot(service: ServiceProcess, id: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${service.url}/llm/answers/${id}`);
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>;
}

function errorType(event: IdEvent | undefined): string | undefined {
  return (event?.data as { error?: { type?: string } } | undefined)?.error?.type;
}

/**
 * Starts one replica per environment; should one fail to start, the others are stopped before it
 * throws (a process left running would keep this file from exiting).
 */
async function replicas(envs: readonly Record<string, string>[]): Promise<ServiceProcess[]> {
  const results = await Promise.allSettled(envs.map((env) => startService(env)));
  const started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failure = results.find((result) => result.status === 'rejected');
  if (failure) {
    await Promise.all(started.map((service) => service.stop()));
    throw failure.reason;
  }
  return started;
}

/** Stops the service and checks that it had not crashed along the way. */
async function stopCleanly(service: ServiceProcess): Promise<void> {
  if (service.child.signalCode === 'SIGKILL') return;
  assert.equal(service.child.exitCode, null, 'the service died');
  const exit = await service.stop();
  assert.equal(exit.code, 0, exit.stderr);
  assert.doesNotMatch(exit.stderr, /uncaught|unhandled/i);
}

describeIf(
  reachable,
  `Redis is not reachable at ${SHARED_REDIS_URL}`,
  'resumable answers on two replicas sharing one Redis',
  () => {
    let fake: FakeUpstream;
    let a: ServiceProcess;
    let b: ServiceProcess;
    const answerIds: string[] = [];

    before(async () => {
      fake = await startFakeUpstream();
      const env = {
        ANTHROPIC_API_KEY: 'k',
        ANTHROPIC_BASE_URL: fake.url,
        REDIS_URL: SHARED_REDIS_URL,
        RESUME_GRACE_SECONDS: '30',
      };
      [a, b] = (await replicas([env, env])) as [ServiceProcess, ServiceProcess];
    });
    after(async () => {
      try {
        await Promise.all([a, b].map((service) => stopCleanly(service)));
      } finally {
        await fake.close();
        for (const id of answerIds) await deleteKeys(SHARED_REDIS_URL, `llmc:answer:{${id}}:`);
      }
    });
    beforeEach(() => {
      fake.reset();
    });

    /** POST /llm/query, resumable, on `service`; resolves once its answer id is known. */
    async function ask(service: ServiceProcess, deltas: string[], deltaDelayMs: number) {
      fake.queue({ kind: 'message', deltas, deltaDelayMs });
      const client = postQuery(service.url, { prompt: 'long', resumable: true });
      await client.received(2);
      assert.equal(client.status, 200);
      const answerId = String(client.headers['x-answer-id']);
      answerIds.push(answerId);
      return { client, answerId };
    }

    it(
      'a client cut after K events resumes on the other replica with Last-Event-ID: K, no gap, one upstream request',
      { timeout: 30_000 },
      async () => {
        const { client, answerId } = await ask(a, WORDS, 25);
        await client.received(5);
        client.cut();
        const seen = client.events.slice(0, 5);
        assert.deepEqual(ids(seen), range(1, 5));
        const upstream = await upstreamRequest(fake);
        const resumed = follow(b, answerId, { 'last-event-id': '5' });
        await resumed.closed;
        assert.equal(resumed.status, 200);
        // The upstream was not closed while no client was connected: it ran to its end.
        assert.equal(upstream.closedEarly, false, 'the upstream was closed during the gap');
        const all = [...seen, ...resumed.events];
        assert.deepEqual(ids(all), range(1, WORDS.length + 2));
        assert.equal(joinedText(all), FULL);
        assert.equal(all.at(-1)?.event, 'done');
        assert.equal(fake.requests.length, 1, 'one upstream request');
        await upstream.closed;
        assert.equal(upstream.closedEarly, false, 'the upstream ran to its end');
        const done = await snapshot(b, answerId);
        assert.equal(done.status, 'completed');
        assert.equal(done.text, FULL);
        // And after the end, either replica replays the whole answer.
        const replay = follow(a, answerId);
        await replay.closed;
        assert.deepEqual(replay.events, all);
      },
    );

    it(
      'a cancel from the other replica closes the upstream within a second',
      { timeout: 30_000 },
      async () => {
        const long = Array.from({ length: 400 }, (_, i) => `c${i} `);
        const { client, answerId } = await ask(a, long, 50);
        const upstream = await upstreamRequest(fake);
        const follower = follow(b, answerId);
        await follower.received(3);
        const closed = closedWithin(upstream, 1_000);
        const res = await fetch(`${b.url}/llm/answers/${answerId}/cancel`, { method: 'POST' });
        assert.equal(res.status, 200);
        await closed;
        await Promise.all([client.closed, follower.closed]);
        assert.equal(errorType(client.events.at(-1)), 'cancelled');
        assert.equal(errorType(follower.events.at(-1)), 'cancelled');
        assert.deepEqual(follower.events.at(-1), client.events.at(-1), 'the same terminal event');
        assert.equal((await snapshot(b, answerId)).status, 'cancelled');
        assert.equal((await snapshot(a, answerId)).status, 'cancelled');
      },
    );

    it(
      'a background answer started on one replica is polled and followed on the other',
      { timeout: 30_000 },
      async () => {
        fake.queue({ kind: 'message', deltas: WORDS, deltaDelayMs: 10 });
        const res = await fetch(`${a.url}/llm/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: 'x', background: true }),
        });
        assert.equal(res.status, 202);
        const { id } = (await res.json()) as { id: string };
        answerIds.push(id);
        const follower = follow(b, id);
        await follower.closed;
        assert.deepEqual(ids(follower.events), range(1, WORDS.length + 2));
        assert.equal(joinedText(follower.events), FULL);
        const done = await snapshot(b, id);
        assert.equal(done.status, 'completed');
        assert.equal(done.text, FULL);
      },
    );

    describe('a producer with a 1 s grace', () => {
      let c: ServiceProcess;
      before(async () => {
        c = await startService({
          ANTHROPIC_API_KEY: 'k',
          ANTHROPIC_BASE_URL: fake.url,
          REDIS_URL: SHARED_REDIS_URL,
          RESUME_GRACE_SECONDS: '1',
        });
      });
      after(async () => {
        // The last test stops it (SIGTERM); should it fail before that, it is stopped here.
        if (c.child.exitCode === null) await stopCleanly(c);
      });

      it(
        'a follower on another replica keeps the answer going past the grace',
        { timeout: 30_000 },
        async () => {
          // 2.4 s of answer: the grace ends long before it does.
          const long = Array.from({ length: 60 }, (_, i) => `g${i} `);
          const { client, answerId } = await ask(c, long, 40);
          const follower = follow(b, answerId);
          await follower.received(3);
          client.cut();
          await follower.closed;
          assert.equal(follower.events.at(-1)?.event, 'done');
          assert.equal(joinedText(follower.events), long.join(''));
          const upstream = await upstreamRequest(fake);
          assert.equal(upstream.closedEarly, false);
        },
      );

      it('with nobody following anywhere, the grace aborts the upstream', { timeout: 30_000 }, async () => {
        const long = Array.from({ length: 400 }, (_, i) => `n${i} `);
        const { client, answerId } = await ask(c, long, 50);
        const upstream = await upstreamRequest(fake);
        client.cut();
        await closedWithin(upstream, 10_000);
        // The upstream closes before the producer's last write (one script: the end event and the
        // status): a follower that gets the end event reads after that write.
        const follower = follow(b, answerId);
        await within(follower.closed, 10_000, 'the follower to get the end event');
        assert.equal(errorType(follower.events.at(-1)), 'cancelled');
        assert.match(JSON.stringify(follower.events.at(-1)?.data), /RESUME_GRACE_SECONDS/);
        assert.equal((await snapshot(b, answerId)).status, 'cancelled');
      });

      it(
        'SIGTERM: the answer ends after the drain, and a follower on another replica gets its last event',
        { timeout: 40_000 },
        async () => {
          const long = Array.from({ length: 2_000 }, (_, i) => `s${i} `);
          const { answerId } = await ask(c, long, 20);
          const follower = follow(b, answerId);
          await follower.received(3);
          const exit = await c.stop();
          assert.equal(exit.code, 0, exit.stderr);
          await within(follower.closed, 10_000, 'the follower to end');
          const last = follower.events.at(-1);
          assert.equal(last?.event, 'error');
          assert.match((last.data as { error: { message: string } }).error.message, /shut down/);
          assert.deepEqual(ids(follower.events), range(1, follower.events.length));
          assert.equal((await snapshot(b, answerId)).status, 'failed');
        },
      );
    });

    it(
      'kill -9 of the producing replica: the follower on the other gets stream_incomplete, the snapshot says failed',
      { timeout: 60_000 },
      async () => {
        const long = Array.from({ length: 2_000 }, (_, i) => `k${i} `);
        const { client, answerId } = await ask(a, long, 20);
        const follower = follow(b, answerId);
        await follower.received(3);
        a.child.kill('SIGKILL');
        await a.exit;
        await client.closed;
        // A follower sees no event and no heartbeat for 10 s, then the lost event.
        await within(follower.closed, 20_000, 'the follower to end');
        const last = follower.events.at(-1);
        assert.equal(last?.event, 'error');
        assert.equal(errorType(last), 'stream_incomplete');
        assert.deepEqual(ids(follower.events), range(1, follower.events.length), 'no gap before it');
        const lost = await snapshot(b, answerId);
        assert.equal(lost.status, 'failed');
        assert.equal((lost.error as { type: string }).type, 'stream_incomplete');
        assert.ok(String(lost.text).startsWith('k0 k1 '), 'the text so far is kept');
      },
    );
  },
);

describeIf(
  redisServerInstalled(),
  'redis-server is not installed',
  'resumable answers while Redis is down',
  () => {
    let redis: PrivateRedis;
    let fake: FakeUpstream;
    let service: ServiceProcess;

    before(async () => {
      redis = await PrivateRedis.start();
      fake = await startFakeUpstream();
      service = await startService({
        ANTHROPIC_API_KEY: 'k',
        ANTHROPIC_BASE_URL: fake.url,
        REDIS_URL: redis.url,
      });
    });
    after(async () => {
      try {
        await stopCleanly(service);
      } finally {
        await fake.close();
        await redis.stop();
      }
    });

    it('a resumable or background request gets a clear 503 at once; a plain one is served', async () => {
      fake.queue({ kind: 'message', deltas: ['up'] });
      const before = postQuery(service.url, { prompt: 'x', resumable: true });
      await before.closed;
      assert.equal(before.status, 200, 'served while Redis is up');
      const answerId = String(before.headers['x-answer-id']);
      await redis.kill();
      // Once the service has seen Redis go (its snapshot route says so), nothing resumable reaches the upstream.
      await waitFor(
        async () => (await fetch(`${service.url}/llm/answers/${answerId}`)).status === 503,
        'the service to see Redis gone',
      );
      for (const body of [
        { prompt: 'x', resumable: true },
        { prompt: 'x', background: true },
        { prompt: 'x', background: true, stream: false },
      ]) {
        const res = await fetch(`${service.url}/llm/query`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(5_000),
        });
        assert.equal(res.status, 503, JSON.stringify(body));
        const error = (await res.json()) as { error: { type: string; message: string } };
        assert.match(error.error.message, /resumable/i);
      }
      assert.equal(fake.requests.length, 1, 'the refused requests never reached the upstream');
      for (const [path, method] of [
        ['', 'GET'],
        ['/events', 'GET'],
        ['/cancel', 'POST'],
      ] as const) {
        const res = await fetch(`${service.url}/llm/answers/${answerId}${path}`, {
          method,
          signal: AbortSignal.timeout(5_000),
        });
        assert.equal(res.status, 503, `${method} ${path}`);
        assert.ok(res.headers.get('retry-after'), 'says when to retry');
        await res.arrayBuffer();
      }
      fake.queue({ kind: 'message', deltas: ['plain'] });
      const plain = postQuery(service.url, { prompt: 'x' });
      await plain.closed;
      assert.equal(plain.status, 200);
      assert.equal(joinedText(plain.events), 'plain');
    });
  },
);

describeIf(
  reachable,
  `Redis is not reachable at ${SHARED_REDIS_URL}`,
  'resumable answers belong to their key on every replica',
  () => {
    let fake: FakeUpstream;
    let services: ServiceProcess[] = [];
    const answerIds: string[] = [];

    before(async () => {
      fake = await startFakeUpstream();
      const env = {
        ANTHROPIC_API_KEY: 'k',
        ANTHROPIC_BASE_URL: fake.url,
        REDIS_URL: SHARED_REDIS_URL,
        SERVICE_API_KEYS: 'owner-team:owner-key-0123456789,other-team:other-key-0123456789',
      };
      services = await replicas([env, env]);
    });
    after(async () => {
      try {
        await Promise.all(services.map((service) => stopCleanly(service)));
      } finally {
        await fake.close();
        for (const id of answerIds) await deleteKeys(SHARED_REDIS_URL, `llmc:answer:{${id}}:`);
      }
    });

    it('another key gets 404 on all three routes of the other replica; the owner gets the answer', async () => {
      const [a, b] = services as [ServiceProcess, ServiceProcess];
      fake.queue({ kind: 'message', deltas: ['mine'] });
      const client = postQuery(
        a.url,
        { prompt: 'x', resumable: true },
        { authorization: 'Bearer owner-key-0123456789' },
      );
      await client.closed;
      assert.equal(client.status, 200);
      const answerId = String(client.headers['x-answer-id']);
      answerIds.push(answerId);
      for (const [path, method] of [
        ['', 'GET'],
        ['/events', 'GET'],
        ['/cancel', 'POST'],
      ] as const) {
        const res = await fetch(`${b.url}/llm/answers/${answerId}${path}`, {
          method,
          headers: { authorization: 'Bearer other-key-0123456789' },
        });
        assert.equal(res.status, 404, `${method} ${path}`);
        await res.arrayBuffer();
      }
      const own = await fetch(`${b.url}/llm/answers/${answerId}`, {
        headers: { authorization: 'Bearer owner-key-0123456789' },
      });
      assert.equal(own.status, 200);
      assert.equal(((await own.json()) as { text: string }).text, 'mine');
      const replay = new SseClient(`${b.url}/llm/answers/${answerId}/events`, {
        headers: { authorization: 'Bearer owner-key-0123456789' },
      });
      await replay.closed;
      assert.deepEqual(replay.events, client.events);
    });
  },
);
