import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ANSWER_LOST, errorEvent, type AnswerEvent } from '../../src/answers/answer-store.ts';
import { RedisAnswerStore, type RedisAnswerStoreOptions } from '../../src/answers/redis-answer-store.ts';
import {
  answerStoreBehaviour,
  completed,
  delta,
  deltas,
  readAll,
} from '../helpers/answer-store-behaviour.ts';
import {
  PrivateRedis,
  SHARED_REDIS_URL,
  deleteKeys,
  describeIf,
  redisReachable,
  redisServerInstalled,
  uniquePrefix,
} from '../helpers/redis.ts';
import { waitFor, within } from '../helpers/wait.ts';

const reachable = await redisReachable();
const prefix = uniquePrefix();

async function connected(
  options: Partial<RedisAnswerStoreOptions> & { url: string },
): Promise<RedisAnswerStore> {
  const store = new RedisAnswerStore({ ttlMs: 60_000, prefix, ...options });
  assert.equal(await store.waitUntilReady(5_000), true, 'connected to Redis');
  return store;
}

const newAnswer = (owner: string | null = 'team-a') => ({
  id: randomUUID(),
  owner,
  model: 'claude-test',
  requestId: `req-${randomUUID()}`,
});

/** Follows an answer in the background, collecting what it yields. */
function follow(store: RedisAnswerStore, id: string, after = 0, signal = new AbortController().signal) {
  const seen: AnswerEvent[] = [];
  const done = (async () => {
    for await (const batch of store.read(id, after, signal)) seen.push(...batch);
  })();
  return { seen, done };
}

describeIf(reachable, `Redis is not reachable at ${SHARED_REDIS_URL}`, 'Redis answer store', () => {
  after(() => deleteKeys(SHARED_REDIS_URL, prefix));

  describe('the shared behaviour', () => {
    answerStoreBehaviour((options) => connected({ ...options, url: SHARED_REDIS_URL }));
  });

  describe('two replicas (two stores on one Redis)', () => {
    let a: RedisAnswerStore;
    let b: RedisAnswerStore;
    before(async () => {
      a = await connected({ url: SHARED_REDIS_URL });
      b = await connected({ url: SHARED_REDIS_URL });
    });
    after(async () => {
      await Promise.all([a.close(), b.close()]);
    });

    it('a follower on the other replica gets the kept and the live events; both count it', async () => {
      const producer = await a.create(newAnswer());
      await producer.append(deltas(1, 2), 't1t2');
      const follower = follow(b, producer.id, 1);
      await waitFor(() => follower.seen.length === 1, 'the kept event');
      assert.equal(await producer.followers(), 1);
      const local = follow(a, producer.id, 0);
      await waitFor(async () => (await producer.followers()) === 2, 'a follower on each replica');
      for (let seq = 3; seq <= 6; seq++) void producer.append([delta(seq)], `t${seq}`);
      await waitFor(() => follower.seen.length === 5, 'the live events on the other replica');
      await producer.finish(completed(7));
      await within(Promise.all([follower.done, local.done]), 5_000, 'both followers to end');
      assert.deepEqual(
        follower.seen.map((e) => e.seq),
        [2, 3, 4, 5, 6, 7],
      );
      assert.deepEqual(
        local.seen.map((e) => e.seq),
        [1, 2, 3, 4, 5, 6, 7],
      );
      const answer = await b.get(producer.id);
      assert.equal(answer?.snapshot.text, 't1t2t3t4t5t6');
      assert.equal(answer.snapshot.status, 'completed');
    });

    it('a read past the last event ends as soon as the answer ends on the other replica', async () => {
      // Looking again every minute: only the live events can end it within the test.
      const slow = await connected({ url: SHARED_REDIS_URL, pollMs: 60_000 });
      try {
        const producer = await a.create(newAnswer());
        await producer.append([delta(1)], 't1');
        const past = follow(slow, producer.id, Number.MAX_SAFE_INTEGER);
        const next = follow(slow, producer.id, 1);
        await waitFor(async () => (await producer.followers()) === 2, 'both followers');
        await producer.finish(completed(2));
        await within(Promise.all([past.done, next.done]), 5_000, 'the reads to end');
        assert.deepEqual(past.seen, []);
        assert.deepEqual(
          next.seen.map((e) => e.seq),
          [2],
        );
      } finally {
        await slow.close();
      }
    });

    it('cancel on the other replica aborts the producer at once (pub/sub)', async () => {
      const producer = await a.create(newAnswer());
      await producer.append([delta(1)], 't1');
      const heard = new Promise((resolve) => {
        producer.cancelRequested.addEventListener('abort', resolve);
      });
      const answer = await b.cancel(producer.id);
      assert.equal(answer?.snapshot.status, 'in_progress');
      await within(heard, 1_000, 'the producer to hear the cancel');
    });

    it('a cancel whose message was missed reaches the producer with its next heartbeat', async () => {
      const producer = await a.create(newAnswer());
      // The flag as the cancel script leaves it, without the message.
      const redis = new Redis(SHARED_REDIS_URL);
      try {
        await redis.hset(`${prefix}answer:{${producer.id}}:meta`, 'cancel', '1');
      } finally {
        redis.disconnect();
      }
      assert.equal(producer.cancelRequested.aborted, false);
      await producer.heartbeat();
      assert.equal(producer.cancelRequested.aborted, true);
    });
  });

  describe('no gap, no overlap', () => {
    it('a batch that does not follow the last kept event is refused, and nothing of it is kept', async () => {
      const store = await connected({ url: SHARED_REDIS_URL });
      try {
        const producer = await store.create(newAnswer());
        await producer.append(deltas(1, 2), 't1t2');
        await assert.rejects(producer.append(deltas(4, 5), 't4t5'), /does not follow event 2/);
        await assert.rejects(producer.append(deltas(2, 3), 't2t3'), /does not follow event 2/);
        await assert.rejects(
          producer.append([delta(3), delta(5)], 't3t5'),
          /event 5 does not follow event 3/,
        );
        const answer = await store.get(producer.id);
        assert.equal(answer?.lastSeq, 2);
        assert.equal(answer.snapshot.text, 't1t2');
        await producer.append([delta(3)], 't3');
        await producer.finish(completed(4));
        assert.deepEqual(
          (await readAll(store, producer.id, 0)).events.map((e) => e.seq),
          [1, 2, 3, 4],
        );
      } finally {
        await store.close();
      }
    });
  });

  describe('a producer that falls silent (crashed replica)', () => {
    let a: RedisAnswerStore;
    let b: RedisAnswerStore;
    const lostAfterMs = 300;
    before(async () => {
      a = await connected({ url: SHARED_REDIS_URL, producerLostAfterMs: lostAfterMs, pollMs: 50 });
      b = await connected({ url: SHARED_REDIS_URL, producerLostAfterMs: lostAfterMs, pollMs: 50 });
    });
    after(async () => {
      await Promise.all([a.close(), b.close()]);
    });

    it('heartbeats keep it alive; silence ends it failed with the lost event, once, for every follower', async () => {
      const answer = newAnswer();
      const producer = await a.create(answer);
      await producer.append(deltas(1, 2), 't1t2');
      const followers = [follow(b, producer.id, 0), follow(b, producer.id, 2), follow(a, producer.id, 1)];
      // Alive for several lost-after periods while it heartbeats.
      for (let i = 0; i < 8; i++) {
        await new Promise((resolve) => setTimeout(resolve, lostAfterMs / 3));
        await producer.heartbeat();
      }
      assert.equal((await b.get(producer.id))?.snapshot.status, 'in_progress');
      // Then silence: every follower ends with the lost event as event 3.
      await within(Promise.all(followers.map((f) => f.done)), 5_000, 'the followers to end');
      const lost = errorEvent(3, ANSWER_LOST, answer.requestId);
      for (const follower of followers) assert.deepEqual(follower.seen.at(-1), lost);
      assert.deepEqual(
        followers.map((f) => f.seen.map((e) => e.seq)),
        [[1, 2, 3], [3], [2, 3]],
      );
      const stored = await b.get(producer.id);
      assert.equal(stored?.snapshot.status, 'failed');
      assert.deepEqual(stored.snapshot.error, ANSWER_LOST);
      assert.equal(stored.lastSeq, 3);
      // A producer that comes back too late is refused: the answer stays as its followers saw it.
      await assert.rejects(producer.append([delta(3)], 't3'), /no longer in progress/);
      assert.equal((await a.get(producer.id))?.lastSeq, 3);
    });

    it('a snapshot of a silent answer says failed even with no follower', async () => {
      const producer = await a.create(newAnswer());
      await waitFor(async () => (await b.get(producer.id))?.snapshot.status === 'failed', 'failed');
    });
  });
});

describeIf(
  redisServerInstalled(),
  'redis-server is not installed',
  'Redis answer store on a private Redis',
  () => {
    let redis: PrivateRedis;
    let admin: Redis;
    before(async () => {
      redis = await PrivateRedis.start();
      admin = new Redis(redis.url, { maxRetriesPerRequest: 0 });
    });
    after(async () => {
      admin.disconnect();
      await redis.stop();
    });

    const scriptCalls = async (): Promise<number> => {
      const stats = await admin.info('commandstats');
      let calls = 0;
      for (const match of stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(match[1]);
      return calls;
    };

    it('one Redis write per append, whatever the number of events in it', async () => {
      const store = await connected({ url: redis.url });
      try {
        const warm = await store.create(newAnswer());
        await warm.finish(completed(1));
        await admin.config('RESETSTAT');
        const producer = await store.create(newAnswer());
        const writes: Promise<void>[] = [];
        for (let call = 0; call < 10; call++)
          writes.push(producer.append(deltas(call * 5 + 1, call * 5 + 5), 'x'));
        writes.push(producer.finish(completed(51)));
        await Promise.all(writes);
        const calls = await scriptCalls();
        assert.ok(calls <= 12, `${calls} script calls for create + 10 appends + finish`);
        assert.equal((await store.get(producer.id))?.lastSeq, 51);
      } finally {
        await store.close();
      }
    });

    it('followers of many answers share one blocking connection per process', async () => {
      const producerSide = await connected({ url: redis.url });
      const followerSide = await connected({ url: redis.url });
      try {
        const producers = await Promise.all(
          Array.from({ length: 20 }, () => producerSide.create(newAnswer())),
        );
        const followers = producers.map((p) => follow(followerSide, p.id));
        await waitFor(
          async () => (await Promise.all(producers.map((p) => p.followers()))).every((n) => n === 1),
          'every follower to be counted',
        );
        for (const producer of producers) void producer.append(deltas(1, 2), 't1t2');
        await waitFor(() => followers.every((f) => f.seen.length === 2), 'the live events');
        const clients = String(await admin.client('LIST'));
        const blocking = clients
          .split('\n')
          .filter((line) => line.includes('name=llm-connector-answers-follow'));
        assert.equal(blocking.length, 1, clients);
        await Promise.all(producers.map((p) => p.finish(completed(3))));
        await within(Promise.all(followers.map((f) => f.done)), 5_000, 'the followers to end');
      } finally {
        await Promise.all([producerSide.close(), followerSide.close()]);
      }
    });

    it(
      'Redis frozen or down: calls fail instead of hanging; back: it serves again',
      { timeout: 20_000 },
      async () => {
        const store = await connected({ url: redis.url, commandTimeoutMs: 150 });
        try {
          const producer = await store.create(newAnswer());
          redis.pause();
          try {
            await within(assert.rejects(store.create(newAnswer())), 3_000, 'create to fail (frozen)');
            await within(assert.rejects(store.get(producer.id)), 3_000, 'get to fail (frozen)');
            // The live stream is not held up: its write fails in the background.
            await within(assert.rejects(producer.append([delta(1)], 't1')), 3_000, 'append to fail (frozen)');
          } finally {
            redis.resume();
          }
          // Redis ran the timed-out write on waking: event 2 follows it.
          await producer.append([delta(2)], 't2');
          const kept = await readAll(store, producer.id, 0, AbortSignal.timeout(1_000));
          assert.deepEqual(
            kept.events.map((e) => e.seq),
            [1, 2],
          );
          assert.equal((await store.get(producer.id))?.snapshot.text, 't1t2');
          await redis.kill();
          await waitFor(() => !store.healthy(), 'the store to see Redis gone');
          await within(assert.rejects(store.create(newAnswer())), 3_000, 'create to fail (down)');
          await within(
            assert.rejects(readAll(store, producer.id, 0)),
            3_000,
            'a new follower to fail (down), before any event',
          );
          await redis.restart();
          assert.equal(await store.waitUntilReady(5_000), true, 'reconnected');
          const again = await store.create(newAnswer());
          await again.append([delta(1)], 't1');
          await again.finish(completed(2));
          assert.equal((await store.get(again.id))?.snapshot.text, 't1');
        } finally {
          await store.close();
        }
      },
    );
  },
);
