/**
 * What a hostile client sends to the answering routes stays bounded and never steers the upstream:
 * client strings in logs and metric labels, path parameters, and an error body that echoes the
 * service's own key.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { requestLogs, SECRET_KEY, startHarness, type Harness } from '../helpers/harness.ts';
import { scrapeMetrics } from '../helpers/routes.ts';
import { waitFor } from '../helpers/wait.ts';
import { MAX_MODEL_LABELS } from '../../src/observability/request-metrics.ts';

const VERSION = { 'anthropic-version': '2023-06-01' };

function post(h: Harness, path: string, body: unknown): Promise<Response> {
  return fetch(`${h.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...VERSION },
    body: JSON.stringify(body),
  });
}

describe('route hardening', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    h.app.server.closeAllConnections();
    await h.close();
  });
  beforeEach(() => {
    h.fake.reset();
  });

  for (const path of ['/v1/messages', '/v1/messages/count_tokens']) {
    it(`${path}: a huge model string is cut in the log line, answered or refused`, async () => {
      const model = `claude-${'x'.repeat(500_000)}`;
      const before = requestLogs(h).length;
      h.fake.queue({ kind: 'error', status: 404, errorType: 'not_found_error', message: 'no such model' });
      const res = await post(h, path, { model, max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }] });
      await res.arrayBuffer();
      await waitFor(() => requestLogs(h).length > before, 'the log line');
      const line = requestLogs(h).at(-1);
      assert.ok(
        typeof line?.model === 'string' && line.model.length <= 201,
        `model logged as ${String(line?.model).length} characters`,
      );
      assert.ok(
        h.logs.every((chunk) => chunk.length < 10_000),
        'no log line carries the client string in full',
      );
    });
  }

  it('client-chosen model names become at most MAX_MODEL_LABELS label values', async () => {
    const count = MAX_MODEL_LABELS + 10;
    for (let i = 0; i < count; i++) {
      const res = await post(h, '/v1/messages', {
        model: `made-up-${i}`,
        max_tokens: 16,
        messages: [{ role: 'user', content: 'Hi' }],
      });
      await res.arrayBuffer();
    }
    await waitFor(
      () => requestLogs(h).filter((l) => String(l.model).startsWith('made-up-')).length === count,
      'every log line',
    );
    const tokens = (await scrapeMetrics(h.url)).find((f) => f.name === 'llmc_tokens_total');
    const models = new Set(tokens?.metrics.map((m) => m.labels?.model));
    assert.ok(models.size <= MAX_MODEL_LABELS + 1, `${models.size} model label values`);
    assert.ok(models.has('other'));
  });

  for (const path of ['/v1/models/..%2fmessages%2fbatches', '/v1/models/a%20b', '/v1/models/%2e%2e']) {
    it(`GET ${path}: a model id outside the id alphabet never reaches the upstream`, async () => {
      const res = await fetch(`${h.url}${path}`, { headers: VERSION });
      assert.equal(res.status, 404);
      const body = (await res.json()) as { type: string; error: { type: string } };
      assert.equal(body.type, 'error');
      assert.equal(body.error.type, 'not_found_error');
      assert.equal(h.fake.requests.length, 0);
    });
  }

  it('GET /v1/models passes on only the list parameters it knows, checked', async () => {
    const ok = await fetch(`${h.url}/v1/models?limit=5&after_id=claude-x&evil=1`, { headers: VERSION });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    assert.equal(h.fake.requests[0]?.url, '/v1/models?after_id=claude-x&limit=5');
    const bad = await fetch(`${h.url}/v1/models?limit=../../x`, { headers: VERSION });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /limit/);
    assert.equal(h.fake.requests.length, 1);
  });

  for (const [route, body] of [
    [
      '/v1/messages',
      { model: 'claude-sonnet-5', max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }] },
    ],
    ['/llm/query', { prompt: 'Hi' }],
    ['/v1/chat/completions', { model: 'claude-sonnet-5', messages: [{ role: 'user', content: 'Hi' }] }],
  ] as const) {
    it(`${route}: an upstream error body that echoes the service's key is redacted`, async () => {
      h.fake.queue({ kind: 'error', status: 400, message: `invalid header x-api-key: ${SECRET_KEY}` });
      const res = await post(h, route, body);
      const text = await res.text();
      assert.equal(res.status, 400);
      assert.ok(!text.includes(SECRET_KEY), text);
      assert.match(text, /\[redacted\]/);
      assert.ok(h.logs.every((chunk) => !chunk.includes(SECRET_KEY)));
    });
  }
});
