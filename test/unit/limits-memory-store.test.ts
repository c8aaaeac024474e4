import { describe } from 'node:test';
import { MemoryLimitStore } from '../../src/limits/memory-store.ts';
import { limitStoreBehaviour } from '../helpers/limit-store-behaviour.ts';

describe('memory limit store', () => {
  limitStoreBehaviour((options) => new MemoryLimitStore(options));
});
