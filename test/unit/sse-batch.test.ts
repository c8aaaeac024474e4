import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { SseBatch } from '../../src/http/sse-writer.ts';

/** A response whose client takes writes while `open` (an HTTP/1.0 one: no direct socket writes). */
class FakeResponse extends EventEmitter {
  readonly writes: string[] = [];
  ended: string | null = null;
  open = true;
  readonly destroyed = false;
  write(text: string): boolean {
    this.writes.push(text);
    return this.open;
  }
  end(text: string): void {
    this.ended = text;
  }
}

function batchOn(res: FakeResponse): SseBatch {
  return new SseBatch(res as unknown as ServerResponse, false, 60_000, 'start;');
}

const nextTick = (): Promise<void> =>
  new Promise((resolve) => {
    process.nextTick(resolve);
  });

describe('SseBatch', () => {
  it('writes what the chunks of one tick produced in one write, at the end of the tick', async () => {
    const res = new FakeResponse();
    const batch = batchOn(res);
    const resume = (): void => assert.fail('nothing paused');
    for (const text of ['a;', 'b;', 'c;']) {
      batch.add(text);
      assert.equal(batch.hooks.afterChunk(resume), true);
    }
    assert.deepEqual(res.writes, [], 'not before the end of the tick');
    await nextTick();
    assert.deepEqual(res.writes, ['start;a;b;c;']);
    batch.add('d;');
    batch.hooks.afterChunk(resume);
    await nextTick();
    assert.deepEqual(res.writes, ['start;a;b;c;', 'd;']);
    batch.add('e;');
    batch.end('done;');
    assert.equal(res.ended, 'e;done;');
    await nextTick();
    assert.deepEqual(res.writes, ['start;a;b;c;', 'd;'], 'nothing after the end');
  });

  it('pauses the pump after a write the client could not take, until it drains', async () => {
    const res = new FakeResponse();
    const batch = batchOn(res);
    let resumed = 0;
    const resume = (): void => {
      resumed++;
    };
    res.open = false;
    batch.add('a;');
    assert.equal(batch.hooks.afterChunk(resume), true, 'the write has not happened yet');
    await nextTick();
    assert.deepEqual(res.writes, ['start;a;']);
    batch.add('b;');
    assert.equal(batch.hooks.afterChunk(resume), false, 'the client is slow: pause');
    await nextTick();
    assert.deepEqual(res.writes, ['start;a;'], 'held while the client is slow');

    // Drained, but what was held is again too much: still paused.
    res.emit('drain');
    assert.deepEqual(res.writes, ['start;a;', 'b;']);
    assert.equal(resumed, 0);

    res.open = true;
    res.emit('drain');
    assert.equal(resumed, 1, 'resumed once the client took everything');
    res.emit('drain');
    assert.equal(resumed, 1, 'and only once');
    batch.add('c;');
    assert.equal(batch.hooks.afterChunk(resume), true);
    await nextTick();
    assert.deepEqual(res.writes, ['start;a;', 'b;', 'c;']);
    batch.stop();
  });
});
