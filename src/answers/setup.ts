import type { Config } from '../config.ts';
import type { AnswerStore } from './answer-store.ts';
import { MemoryAnswerStore } from './memory-answer-store.ts';

/**
 * The answer store the settings ask for: in this process's memory. (With several workers resumable
 * answers need a store shared by all, which `loadConfig` requires to be Redis: see `answerSettings`.)
 */
export function answerStoreFor(config: Config): AnswerStore {
  return new MemoryAnswerStore({ ttlMs: config.answers.ttlMs });
}
