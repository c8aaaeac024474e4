import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventBytes, type AnswerEvent } from '../../src/answers/answer-store.ts';
import { MemoryAnswerStore } from '../../src/answers/memory-answer-store.ts';
import { answerStoreBehaviour } from '../helpers/answer-store-behaviour.ts';

describe('memory answer store', () => {
  answerStoreBehaviour((options) => new MemoryAnswerStore(options));
});

describe('memory answer store: bounded by ANSWER_MEMORY_BYTES', () => {
  const text = 'x'.repeat(1_000);
  const delta: AnswerEvent = { seq: 1, event: 'delta', data: JSON.stringify({ text }) };
  const done: AnswerEvent = { seq: 2, event: 'done', data: '{}' };
  /** What one answer of one delta and a `done` holds. */
  const answerBytes = eventBytes(delta) + 2 * text.length + eventBytes(done);

  async function answer(store: MemoryAnswerStore, id: string, end: boolean): Promise<void> {
    const producer = await store.create({ id, owner: null, model: 'claude-test', requestId: `req-${id}` });
    await producer.append([delta], text);
    if (end) {
      await producer.finish({
        status: 'completed',
        events: [done],
        text: '',
        stopReason: 'end_turn',
        usage: null,
        error: null,
      });
    }
  }

  it('forgets the longest-ended answers first, never a running one, and counts each', async () => {
    let evicted = 0;
    const store = new MemoryAnswerStore({
      ttlMs: 60_000,
      maxBytes: 3 * answerBytes,
      onEvicted: () => {
        evicted++;
      },
    });
    try {
      await answer(store, 'first', true);
      await answer(store, 'running', false);
      await answer(store, 'second', true);
      assert.equal(evicted, 0, 'within the bound: nothing forgotten');
      await answer(store, 'third', true);
      assert.equal(evicted, 1);
      assert.equal(await store.get('first'), null, 'the longest-ended answer is forgotten');
      assert.notEqual(await store.get('running'), null, 'a running answer is kept');
      assert.notEqual(await store.get('second'), null);
      assert.notEqual(await store.get('third'), null);
      assert.ok(store.bytes <= 3 * answerBytes, `${store.bytes} bytes kept`);
    } finally {
      await store.close();
    }
  });

  it('running answers alone may exceed the bound: none of them is dropped', async () => {
    const store = new MemoryAnswerStore({ ttlMs: 60_000, maxBytes: 1 });
    try {
      await answer(store, 'a', false);
      await answer(store, 'b', false);
      assert.notEqual(await store.get('a'), null);
      assert.notEqual(await store.get('b'), null);
    } finally {
      await store.close();
    }
  });
});
