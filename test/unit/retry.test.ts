import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs, retryDelayMs, serverRetryAfterMs, shouldRetryStatus } from '../../src/upstream/retry.ts';

describe('retry decision', () => {
  it('retries 408, 409, 429 and >= 500 but not other 4xx', () => {
    for (const status of [408, 409, 429, 500, 502, 503, 504, 529])
      assert.equal(shouldRetryStatus(status, {}), true, String(status));
    for (const status of [400, 401, 403, 404, 413, 422])
      assert.equal(shouldRetryStatus(status, {}), false, String(status));
  });

  it('obeys x-should-retry either way', () => {
    assert.equal(shouldRetryStatus(400, { 'x-should-retry': 'true' }), true);
    assert.equal(shouldRetryStatus(529, { 'x-should-retry': 'false' }), false);
  });

  it('prefers retry-after-ms, then retry-after seconds or HTTP date, within 60 s', () => {
    assert.equal(serverRetryAfterMs({ 'retry-after-ms': '250', 'retry-after': '9' }), 250);
    assert.equal(serverRetryAfterMs({ 'retry-after': '2' }), 2000);
    assert.equal(serverRetryAfterMs({ 'retry-after': '0.5' }), 500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(serverRetryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }, now), 3000);
    assert.equal(serverRetryAfterMs({ 'retry-after': '61' }), undefined);
    assert.equal(serverRetryAfterMs({ 'retry-after': '0' }), undefined);
    assert.equal(serverRetryAfterMs({ 'retry-after': 'soon' }), undefined);
    assert.equal(serverRetryAfterMs({}), undefined);
  });

  it('backs off 0.5 s doubling up to 8 s, with up to 25 % jitter off', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((n) => backoffMs(n, () => 0)),
      [500, 1000, 2000, 4000, 8000, 8000],
    );
    assert.equal(
      backoffMs(0, () => 1),
      375,
    );
    assert.equal(
      retryDelayMs(1, {}, () => 0.5),
      875,
    );
    assert.equal(
      retryDelayMs(1, { 'retry-after': '3' }, () => 0.5),
      3000,
    );
  });
});
