import assert from 'node:assert/strict';
import type { RecordedRequest } from '../../src/mock/fake-upstream.ts';

/** `promise`, or a failure naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The fake upstream saw `req` closed by the service before its answer was complete, within `ms`. */
export async function closedWithin(req: RecordedRequest | undefined, ms: number): Promise<void> {
  assert.ok(req, 'the upstream never saw the request');
  await within(req.closed, ms, 'the upstream request to close');
  assert.equal(req.closedEarly, true);
}
