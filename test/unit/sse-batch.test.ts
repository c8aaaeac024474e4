import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { SseBatch } from '../../src/http/sse-writer.ts';

/** A socket whose client takes writes while `open`. */
class FakeSocket extends EventEmitter {
  readonly writes: string[] = [];
  open = true;
  readonly destroyed = false;
  write(text: string): boolean {
    this.writes.push(text);
    return this.open;
  }
}

/**
 * A response whose client takes writes while `open`. Given a socket, the batch writes the chunks
 * after the first to it directly (an HTTP/1.1 answer, chunked by the batch); else all through `write`.
 */
class FakeResponse extends FakeSocket {
  ended: string | null = null;
  readonly writableEnded = false;
  readonly writableCorked = 0;
  readonly socket: FakeSocket | null;
  constructor(socket: FakeSocket | null = null) {
    super();
    this.socket = socket;
  }
  end(text: string): void {
    this.ended = text;
  }
}

function batchOn(res: FakeResponse): SseBatch {
  return new SseBatch(res as unknown as ServerResponse, res.socket !== null, 60_000, 'start;');
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

  it('frames the chunks it writes to the socket, and pauses the pump on the socket too', async () => {
    const socket = new FakeSocket();
    const res = new FakeResponse(socket);
    const batch = batchOn(res);
    let resumed = 0;
    const resume = (): void => {
      resumed++;
    };
    batch.add('a;');
    batch.hooks.afterChunk(resume);
    await nextTick();
    assert.deepEqual(res.writes, ['start;a;'], 'the head and the first chunk through the response');
    socket.open = false;
    batch.add('bé;');
    assert.equal(batch.hooks.afterChunk(resume), true);
    await nextTick();
    assert.deepEqual(socket.writes, ['4\r\nbé;\r\n'], 'framed by its length in bytes');
    batch.add('c;');
    assert.equal(batch.hooks.afterChunk(resume), false, 'the socket could not take it: pause');
    res.emit('drain');
    assert.equal(resumed, 0, "the response's drain is not the socket's");
    socket.open = true;
    socket.emit('drain');
    assert.deepEqual(socket.writes, ['4\r\nbé;\r\n', '2\r\nc;\r\n']);
    assert.equal(resumed, 1);
    batch.end('done;');
    assert.equal(res.ended, 'done;');
  });
});
