import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';

/**
 * ioredis is loaded the first time a Redis client is made (limits, stored answers, usage reports),
 * not at start: most deployments without REDIS_URL never need it, and loading it costs several MiB
 * of RSS.
 */
function loadRedis(): typeof Redis {
  return (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis;
}

/**
 * A connection that fails fast: while disconnected a command is refused at once instead of queueing
 * behind a dead connection, a command the caller has given up on is never replayed (it could count
 * twice), and it reconnects with a backoff of up to 1 s. RESP2 works with every Redis-compatible
 * server. `options` adds to or overrides this (e.g. `commandTimeout`, or an offline queue for a
 * subscriber, whose SUBSCRIBE waits for the connection).
 */
export function connectRedis(
  url: string,
  name: string,
  options: Pick<RedisOptions, 'commandTimeout' | 'enableAutoPipelining' | 'enableOfflineQueue'> = {},
): Redis {
  return new (loadRedis())(url, {
    connectTimeout: 2_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 1_000),
    protocol: 2,
    connectionName: name,
    ...options,
  });
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
