import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cancel } from '../../src/cancel.ts';

describe('Cancel', () => {
  it('runs its listeners once, in order, and not those taken back', () => {
    const cancel = new Cancel();
    const calls: string[] = [];
    const a = (): void => {
      calls.push('a');
    };
    const b = (): void => {
      calls.push('b');
    };
    const c = (): void => {
      calls.push('c');
    };
    cancel.onAbort(a);
    cancel.onAbort(b);
    cancel.onAbort(c);
    cancel.offAbort(b);
    assert.equal(cancel.aborted, false);
    cancel.abort();
    cancel.abort();
    assert.equal(cancel.aborted, true);
    assert.deepEqual(calls, ['a', 'c']);
    cancel.onAbort(b); // already cancelled: never runs
    assert.deepEqual(calls, ['a', 'c']);
  });

  it('gives an AbortSignal that aborts with it, made before or after', () => {
    const early = new Cancel();
    const signal = early.signal;
    assert.equal(signal.aborted, false);
    assert.equal(early.signal, signal, 'one signal per cancellation');
    early.abort();
    assert.equal(signal.aborted, true);
    const late = new Cancel();
    late.abort();
    assert.equal(late.signal.aborted, true);
  });
});
