/** A 400 names the field and says what is allowed, in plain words, in each API's own error shape. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHarness, type Harness } from '../helpers/harness.ts';

function post(h: Harness, path: string, body: unknown): Promise<Response> {
  return fetch(`${h.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('validation messages', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  for (const [body, expected] of [
    [
      { prompt: 'Hi', promt: 'typo' },
      '"promt" is not a field of the body (see /docs for the fields this API takes)',
    ],
    [{ prompt: '   ' }, '"prompt" must not be blank'],
    [{ messages: [{ role: 'system', content: 'Hi' }] }, '"messages[0].role" must be "user" or "assistant"'],
    [{ prompt: 'Hi', max_tokens: 0 }, '"max_tokens" must be at least 1'],
    [{ prompt: 'Hi', temperature: 'warm' }, '"temperature" must be a number'],
  ] as const) {
    it(`/llm/query ${JSON.stringify(body)} → ${expected}`, async () => {
      const res = await post(h, '/llm/query', body);
      assert.equal(res.status, 400);
      const json = (await res.json()) as { error: { type: string; message: string } };
      assert.equal(json.error.type, 'invalid_request_error');
      assert.equal(json.error.message, expected);
    });
  }

  it('/v1/chat/completions: OpenAI shape with the field in `param`', async () => {
    const res = await post(h, '/v1/chat/completions', {
      model: 'claude-sonnet-5',
      messages: [{ role: 'user', content: 'Hi' }],
      temperature: 'warm',
    });
    assert.equal(res.status, 400);
    const json = (await res.json()) as { error: { message: string; param: string; type: string } };
    assert.equal(json.error.type, 'invalid_request_error');
    assert.equal(json.error.param, 'temperature');
    assert.equal(json.error.message, '"temperature" must be a number or null');
    const missing = await post(h, '/v1/chat/completions', { model: 'claude-sonnet-5' });
    assert.equal(
      ((await missing.json()) as { error: { message: string } }).error.message,
      '"messages" is required',
    );
    assert.equal(h.fake.requests.length, 0);
  });
});
