import assert from 'node:assert/strict';
import type { FakeUpstream, RecordedRequest } from '../../src/mock/fake-upstream.ts';

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

/**
 * Polls `check` every 10 ms until it returns true; fails naming `what` after `ms`. For conditions
 * that have no event of their own (a counter in another module, a log line, a scraped metric).
 */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The fake upstream's `n`-th request (1-based) once it has arrived, within `ms`. */
export async function upstreamRequest(fake: FakeUpstream, n = 1, ms = 10_000): Promise<RecordedRequest> {
  await waitFor(() => fake.requests.length >= n, `upstream request #${n}`, ms);
  const req = fake.requests[n - 1];
  assert.ok(req);
  return req;
}

/** The fake upstream saw `req` closed by the service before its answer was complete, within `ms`. */
export async function closedWithin(req: RecordedRequest | undefined, ms: number): Promise<void> {
  assert.ok(req, 'the upstream never saw the request');
  await within(req.closed, ms, 'the upstream request to close');
  assert.equal(req.closedEarly, true);
}
