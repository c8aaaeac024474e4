import type { Config } from '../config.ts';
import type { AnswerStore } from './answer-store.ts';
import { RedisAnswerStore } from './redis-answer-store.ts';

export interface AnswerStoreSetup {
  /** Undefined: the app keeps answers in this process's memory (or they are off). */
  readonly store: AnswerStore | undefined;
  /** Waits for Redis (when the answers live there) up to `ms`; true when ready. */
  waitUntilReady(ms: number): Promise<boolean>;
}

/**
 * Where resumable and background answers live: in Redis when REDIS_URL is set, so that any replica
 * can resume, follow or cancel any answer; else in memory (the app's default). Nothing when they are
 * off: Redis is then not connected for them.
 */
export function setUpAnswerStore(
  config: Pick<Config, 'answers' | 'limits'>,
  onRedisError: (error: Error) => void,
): AnswerStoreSetup {
  const url = config.limits.redisUrl;
  if (!config.answers.enabled || url === undefined) {
    return { store: undefined, waitUntilReady: () => Promise.resolve(true) };
  }
  const store = new RedisAnswerStore({ url, ttlMs: config.answers.ttlMs, onConnectionError: onRedisError });
  return { store, waitUntilReady: (ms) => store.waitUntilReady(ms) };
}
