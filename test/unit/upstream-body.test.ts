import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UpstreamBody, type BodySink } from '../../src/upstream/upstream-body.ts';

/** Records what the body asks of the undici controller. */
function controller(): { calls: string[]; pause(): void; resume(): void; abort(reason: Error): void } {
  const calls: string[] = [];
  return {
    calls,
    pause: () => calls.push('pause'),
    resume: () => calls.push('resume'),
    abort: (reason) => calls.push(`abort: ${reason.message}`),
  };
}

function recorder(): BodySink & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    data: (chunk) => seen.push(chunk.toString()),
    end: () => seen.push('end'),
    error: (error) => seen.push(`error: ${error.message}`),
  };
}

describe('UpstreamBody', () => {
  it('hands chunks straight to the reader, in order, then the end', () => {
    const ctl = controller();
    const body = new UpstreamBody(ctl);
    const sink = recorder();
    body.pipeTo(sink);
    body.push(Buffer.from('a'));
    body.push(Buffer.from('b'));
    body.finish();
    assert.deepEqual(sink.seen, ['a', 'b', 'end']);
    assert.deepEqual(ctl.calls, []);
  });

  it('holds chunks that arrive before the reader, pausing the upstream, and resumes once it is attached', () => {
    const ctl = controller();
    const body = new UpstreamBody(ctl);
    body.push(Buffer.from('early'));
    assert.deepEqual(ctl.calls, ['pause']);
    const sink = recorder();
    body.pipeTo(sink);
    assert.deepEqual(sink.seen, ['early']);
    assert.deepEqual(ctl.calls, ['pause', 'resume']);
    body.push(Buffer.from('late'));
    assert.deepEqual(sink.seen, ['early', 'late']);
  });

  it('delivers an end or a failure that came before the reader', () => {
    const ended = new UpstreamBody(controller());
    ended.push(Buffer.from('x'));
    ended.finish();
    const first = recorder();
    ended.pipeTo(first);
    assert.deepEqual(first.seen, ['x', 'end']);

    const failed = new UpstreamBody(controller());
    failed.fail(new Error('socket hang up'));
    const second = recorder();
    failed.pipeTo(second);
    assert.deepEqual(second.seen, ['error: socket hang up']);
  });

  it('refuses a second reader', () => {
    const body = new UpstreamBody(controller());
    body.pipeTo(recorder());
    assert.throws(() => {
      body.pipeTo(recorder());
    }, /already being read/);
  });

  it('destroy() aborts an open request once and silences the reader; not after the end', () => {
    const ctl = controller();
    const body = new UpstreamBody(ctl);
    const sink = recorder();
    body.pipeTo(sink);
    body.destroy();
    body.fail(new Error('aborted'));
    body.push(Buffer.from('more'));
    assert.deepEqual(sink.seen, []);
    assert.deepEqual(ctl.calls, ['abort: The service closed the upstream request']);

    const done = controller();
    const finished = new UpstreamBody(done);
    finished.pipeTo(recorder());
    finished.finish();
    finished.destroy();
    assert.deepEqual(done.calls, []);
  });

  it('discardRest() lets the body finish unread', () => {
    const ctl = controller();
    const body = new UpstreamBody(ctl);
    const sink = recorder();
    body.pipeTo(sink);
    body.discardRest();
    body.push(Buffer.from('ignored'));
    body.finish();
    assert.deepEqual(sink.seen, []);
    assert.deepEqual(ctl.calls, ['resume']);
  });

  it('bytes() and json() read the whole body', async () => {
    const body = new UpstreamBody(controller());
    const whole = body.json();
    body.push(Buffer.from('{"a":'));
    body.push(Buffer.from('[1,2]}'));
    body.finish();
    assert.deepEqual(await whole, { a: [1, 2] });

    const broken = new UpstreamBody(controller());
    const bytes = broken.bytes();
    broken.fail(new Error('cut'));
    await assert.rejects(bytes, /cut/);
  });
});
