import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  deltaText,
  parseSse,
  query,
  requestLogOf,
  startHarness,
  withRequestId,
  type Harness,
} from '../helpers/harness.ts';
import { closedWithin, upstreamRequest } from '../helpers/wait.ts';

describe('retries before the first byte', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ MAX_RETRIES: '2' });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
    h.logs.length = 0;
  });

  it('retries 529 and 429 until success, waiting what the upstream asks', async () => {
    h.fake.queue(
      { kind: 'error', status: 529, retryAfterMs: '200' },
      { kind: 'error', status: 429, retryAfter: '0.3' },
      { kind: 'message', deltas: ['ok'] },
    );
    const res = await query(h.url, { prompt: 'a' }, withRequestId('retried-3'));
    assert.equal(res.status, 200);
    assert.equal(deltaText(parseSse(await res.text())), 'ok');
    const at = h.fake.requests.map((r) => r.receivedAt);
    assert.equal(at.length, 3);
    assert.ok((at[1] ?? 0) - (at[0] ?? 0) >= 190, `first wait ${(at[1] ?? 0) - (at[0] ?? 0)} ms`);
    assert.ok((at[2] ?? 0) - (at[1] ?? 0) >= 290, `second wait ${(at[2] ?? 0) - (at[1] ?? 0)} ms`);
    assert.equal((await requestLogOf(h, 'retried-3')).attempts, 3);
  });

  it('gives up after MAX_RETRIES retries with the honest status', async () => {
    h.fake.setScenario(() => ({ kind: 'error', status: 503, retryAfterMs: '10' }));
    const res = await query(h.url, { prompt: 'a' });
    assert.equal(res.status, 503);
    await res.text();
    assert.equal(h.fake.requests.length, 3);
  });

  it('backs off about 0.5 s then 1 s when the upstream gives no retry-after', async () => {
    h.fake.setScenario(() => ({ kind: 'error', status: 500 }));
    const res = await query(h.url, { prompt: 'a' });
    assert.equal(res.status, 503);
    await res.text();
    const at = h.fake.requests.map((r) => r.receivedAt);
    const first = (at[1] ?? 0) - (at[0] ?? 0);
    const second = (at[2] ?? 0) - (at[1] ?? 0);
    assert.ok(first >= 370 && first < 1500, `first wait ${first} ms`);
    assert.ok(second >= 740 && second < 2500, `second wait ${second} ms`);
  });

  it('does not retry 400, and obeys x-should-retry both ways', async () => {
    h.fake.queue({ kind: 'error', status: 400 });
    assert.equal((await query(h.url, { prompt: 'a' })).status, 400);
    assert.equal(h.fake.requests.length, 1);
    h.fake.reset();
    h.fake.queue({ kind: 'error', status: 529, shouldRetry: false });
    assert.equal((await query(h.url, { prompt: 'a' })).status, 503);
    assert.equal(h.fake.requests.length, 1);
    h.fake.reset();
    h.fake.queue(
      { kind: 'error', status: 409, shouldRetry: true, retryAfterMs: '10' },
      { kind: 'message', deltas: ['x'] },
    );
    assert.equal((await query(h.url, { prompt: 'a', stream: false })).status, 200);
    assert.equal(h.fake.requests.length, 2);
  });

  it('retries connection failures and read timeouts before the first byte', async () => {
    h.fake.queue({ kind: 'hangup' }, { kind: 'stall' }, { kind: 'message', deltas: ['back'] });
    const res = await query(h.url, { prompt: 'a', stream: false });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { text: string }).text, 'back');
    assert.equal(h.fake.requests.length, 3);
  });

  it('never retries a mid-stream error', async () => {
    h.fake.queue({ kind: 'message', deltas: ['a', 'b'], fault: { type: 'error', afterDeltas: 1 } });
    await (await query(h.url, { prompt: 'a' }, withRequestId('mid-stream-error'))).text();
    assert.equal((await requestLogOf(h, 'mid-stream-error')).attempts, 1);
    assert.equal(h.fake.requests.length, 1);
  });

  it('MAX_RETRIES=0 disables retries', async () => {
    const once = await startHarness({ MAX_RETRIES: '0' });
    try {
      once.fake.setScenario(() => ({ kind: 'error', status: 529 }));
      assert.equal((await query(once.url, { prompt: 'a' })).status, 503);
      assert.equal(once.fake.requests.length, 1);
    } finally {
      await once.close();
    }
  });
});

describe('failures after the stream has begun end with an error event, never done', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ SSE_KEEPALIVE_INTERVAL: '0.15' });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
  });

  const cases = [
    [
      'a mid-stream error event',
      { type: 'error', afterDeltas: 2, errorType: 'overloaded_error', message: 'Overloaded' },
      'overloaded_error',
    ],
    ['a stall past the read timeout', { type: 'stall', afterDeltas: 2 }, 'upstream_timeout'],
    ['a cut connection', { type: 'cut', afterDeltas: 2 }, 'stream_incomplete'],
    ['a stream that ends without message_stop', { type: 'truncate', afterDeltas: 2 }, 'stream_incomplete'],
    ['unparseable data', { type: 'badJson', afterDeltas: 2 }, 'upstream_error'],
  ] as const;
  for (const [label, fault, type] of cases) {
    it(`${label} → error event ${type}`, async () => {
      h.fake.queue({ kind: 'message', deltas: ['one ', 'two ', 'three'], fault });
      const res = await query(h.url, { prompt: 'a' });
      assert.equal(res.status, 200);
      const events = parseSse(await res.text());
      assert.deepEqual(
        events.map((e) => e.event),
        ['start', 'delta', 'delta', 'error'],
      );
      const error = events.at(-1)?.data as { error: { type: string; message: string }; request_id: string };
      assert.equal(error.error.type, type);
      assert.equal(error.request_id, res.headers.get('x-request-id'));
    });
  }

  it('closes the upstream request after unparseable data', async () => {
    h.fake.queue({ kind: 'message', deltas: ['one ', 'two'], fault: { type: 'badJson', afterDeltas: 1 } });
    await (await query(h.url, { prompt: 'a' })).text();
    await closedWithin(h.fake.requests[0], 2000);
  });

  it('sends keep-alive comments during upstream silence', async () => {
    h.fake.queue({ kind: 'message', deltas: ['slow ', 'words'], deltaDelayMs: 400 });
    const text = await (await query(h.url, { prompt: 'a' })).text();
    assert.match(text, /^: keep-alive$/m);
    assert.equal(deltaText(parseSse(text)), 'slow words');
    assert.equal(parseSse(text).at(-1)?.event, 'done');
  });
});

describe('a client that goes away aborts the upstream request at once', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ UPSTREAM_READ_TIMEOUT: '30', MAX_RETRIES: '2' });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
  });

  it('mid-stream', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 50 }, (_, i) => `w${i} `),
      deltaDelayMs: 50,
    });
    const controller = new AbortController();
    const res = await query(h.url, { prompt: 'a' }, { signal: controller.signal });
    const reader = res.body?.getReader();
    await reader?.read();
    controller.abort();
    await closedWithin(h.fake.requests[0], 1000);
  });

  it('before the first byte', async () => {
    h.fake.queue({ kind: 'stall' });
    const controller = new AbortController();
    const pending = query(h.url, { prompt: 'a' }, { signal: controller.signal }).catch(() => undefined);
    const stalled = await upstreamRequest(h.fake);
    controller.abort();
    await pending;
    await closedWithin(stalled, 1000);
  });

  it('during a retry wait: no further attempt is made', async () => {
    h.fake.setScenario(() => ({ kind: 'error', status: 529, retryAfter: '2' }));
    const controller = new AbortController();
    const pending = query(
      h.url,
      { prompt: 'a' },
      withRequestId('gone-in-retry-wait', { signal: controller.signal }),
    ).catch(() => undefined);
    // The 529 has been answered in full: the service is now waiting 2 s before its retry.
    await (
      await upstreamRequest(h.fake)
    ).closed;
    controller.abort();
    await pending;
    // Written once the handler has returned: a retry would have been made (and counted) before it.
    const line = await requestLogOf(h, 'gone-in-retry-wait');
    assert.equal(line.outcome, 'client_closed');
    assert.equal(line.attempts, 1);
    assert.equal(h.fake.requests.length, 1);
  });

  it('on a "stream": false request', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 50 }, (_, i) => `w${i} `),
      deltaDelayMs: 50,
    });
    const controller = new AbortController();
    const pending = query(h.url, { prompt: 'a', stream: false }, { signal: controller.signal }).catch(
      () => undefined,
    );
    const answering = await upstreamRequest(h.fake);
    controller.abort();
    await pending;
    await closedWithin(answering, 1000);
  });
});
