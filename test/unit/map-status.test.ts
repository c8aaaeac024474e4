import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mapUpstreamStatus } from '../../src/upstream/map-status.ts';

const body = (type: string, message: string) => JSON.stringify({ type: 'error', error: { type, message } });

describe('mapUpstreamStatus', () => {
  it("passes the upstream message on for the client's own mistakes (400, 404)", () => {
    const e = mapUpstreamStatus(400, {}, body('invalid_request_error', 'max_tokens: too big'));
    assert.deepEqual([e.status, e.type, e.message], [400, 'invalid_request_error', 'max_tokens: too big']);
    assert.equal(mapUpstreamStatus(404, {}, body('not_found_error', 'model: x')).status, 400);
  });

  it('turns rejected service credentials into 502 without echoing anything of the key', () => {
    for (const status of [401, 403]) {
      const e = mapUpstreamStatus(
        status,
        {},
        body('authentication_error', 'invalid x-api-key sk-ant-secret'),
      );
      assert.equal(e.status, 502);
      assert.equal(e.type, 'upstream_authentication_error');
      assert.doesNotMatch(e.message, /sk-ant/);
      assert.match(e.message, /ANTHROPIC_API_KEY/);
    }
  });

  it('maps 429 to 429 and 500/502/503/529 to 503, each with Retry-After', () => {
    const limited = mapUpstreamStatus(429, { 'retry-after': '7' }, body('rate_limit_error', 'slow down'));
    assert.deepEqual([limited.status, limited.type, limited.retryAfter], [429, 'rate_limit_error', '7']);
    for (const status of [500, 502, 503, 529]) {
      const e = mapUpstreamStatus(status, {}, 'not json');
      assert.equal(e.status, 503, String(status));
      assert.equal(e.retryAfter, '5');
    }
    assert.equal(mapUpstreamStatus(529, { 'retry-after-ms': '1500' }, '').retryAfter, '2');
  });

  it('maps upstream timeouts to 504 and anything unexpected to 502', () => {
    assert.equal(mapUpstreamStatus(504, {}, '').status, 504);
    assert.equal(mapUpstreamStatus(402, {}, body('billing_error', 'pay')).status, 502);
  });
});
