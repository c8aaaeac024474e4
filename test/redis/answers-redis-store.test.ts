import { after, describe } from 'node:test';
import { RedisAnswerStore } from '../../src/answers/redis-answer-store.ts';
import { answerStoreBehaviour } from '../helpers/answer-store-behaviour.ts';
import { SHARED_REDIS_URL, deleteKeys, describeIf, redisReachable, uniquePrefix } from '../helpers/redis.ts';

const reachable = await redisReachable();
const prefix = uniquePrefix();

describeIf(reachable, `Redis is not reachable at ${SHARED_REDIS_URL}`, 'Redis answer store', () => {
  after(() => deleteKeys(SHARED_REDIS_URL, prefix));

  describe('the shared behaviour', () => {
    answerStoreBehaviour(async (options) => {
      const store = new RedisAnswerStore({ ...options, url: SHARED_REDIS_URL, prefix });
      await store.waitUntilReady(5_000);
      return store;
    });
  });
});
