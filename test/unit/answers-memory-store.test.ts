import { describe } from 'node:test';
import { MemoryAnswerStore } from '../../src/answers/memory-answer-store.ts';
import { answerStoreBehaviour } from '../helpers/answer-store-behaviour.ts';

describe('memory answer store', () => {
  answerStoreBehaviour((options) => new MemoryAnswerStore(options));
});
