import type { Redis } from 'ioredis';

/**
 * True once `redis` is connected and ready, or false when it is not within `timeoutMs` (for
 * start-up and tests). The limits, the stored answers and the usage reports each hold a connection.
 */
export function redisReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const onReady = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(redis.status === 'ready');
    }, timeoutMs);
    redis.once('ready', onReady);
  });
}
