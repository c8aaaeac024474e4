import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';

/**
 * ioredis is loaded the first time a Redis client is made (limits, stored answers, usage reports),
 * not at start: most deployments without REDIS_URL never need it, and loading it costs several MiB
 * of RSS.
 */
export function loadRedis(): typeof Redis {
  return (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis;
}

/**
 * True once `redis` is connected and ready, or false when it is not within `timeoutMs` (for
 * start-up and tests).
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
