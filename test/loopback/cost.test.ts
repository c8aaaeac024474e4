/**
 * Every answer on every route is priced from its real usage (partial answers included), and the cost
 * appears in the request's log line (`cost_usd`), in `/llm/query`'s `done` event and JSON answer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FakeScenario } from '../../src/mock/types.ts';
import { parseSse, requestLogOf, requestLogs, startHarness, type Harness } from '../helpers/harness.ts';
import {
  ROUTES,
  bearer,
  expectAnswer,
  metricValue,
  readUntilThenAbort,
  scrapeMetrics,
  type RouteName,
} from '../helpers/routes.ts';
import { waitFor } from '../helpers/wait.ts';

const ALICE = 'alice-key-0123456789abcdef';

type Usage = Extract<FakeScenario, { kind: 'message' }>['usage'];

// claude-sonnet-5: $2 input, $2.50 5m writes, $4 1h writes, $0.20 cache hits, $10 output per MTok.
const SPLIT: Usage = {
  input_tokens: 1000,
  output_tokens: 500,
  cache_creation_input_tokens: 3000,
  cache_read_input_tokens: 10000,
  cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 },
};
// 1000×2 + 1000×2.5 + 2000×4 + 10000×0.2 + 500×10 = 19500 µ$
const SPLIT_COST = '0.0195';

const PATHS: Record<RouteName, string> = {
  query: '/llm/query',
  messages: '/v1/messages',
  chat: '/v1/chat/completions',
};

let n = 0;

/** One request to `route` for `model`, named with a fresh request id (returned). */
async function send(
  h: Harness,
  route: RouteName,
  options: { model?: string; stream?: boolean; signal?: AbortSignal } = {},
): Promise<{ id: string; res: Response }> {
  const id = `cost-${++n}`;
  const stream = options.stream ?? true;
  const model = options.model ?? 'claude-sonnet-5';
  const body =
    route === 'query'
      ? { prompt: 'Hi', model, stream, max_tokens: 600 }
      : { model, max_tokens: 600, stream, messages: [{ role: 'user', content: 'Hi' }] };
  const res = await fetch(`${h.url}${PATHS[route]}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-request-id': id },
    body: JSON.stringify(body),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { id, res };
}

describe('the cost of every answer', () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llmc-cost-'));
    const prices = join(dir, 'prices.json');
    writeFileSync(prices, JSON.stringify({ 'claude-x-1': { input: 1, output: 3 } }));
    h = await startHarness({ MODEL_PRICES_FILE: prices, UPSTREAM_READ_TIMEOUT: '30' });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    h.fake.reset();
  });

  for (const route of ROUTES)
    for (const stream of [true, false])
      it(`${route} ${stream ? 'streamed' : 'whole'}: priced from its usage, cache writes split 5m/1h`, async () => {
        h.fake.queue({ kind: 'message', deltas: ['Hello'], usage: SPLIT });
        const { id, res } = await send(h, route, { stream });
        const text = await expectAnswer(route, res, stream);
        assert.equal((await requestLogOf(h, id)).cost_usd, SPLIT_COST);
        if (route === 'query') {
          const answer = stream
            ? (parseSse(text).at(-1)?.data as Record<string, unknown>)
            : (JSON.parse(text) as Record<string, unknown>);
          assert.equal(answer.cost_usd, SPLIT_COST);
        }
      });

  it('a model with no price is served; its cost is null, never 0', async () => {
    for (const route of ROUTES) {
      h.fake.queue({ kind: 'message', deltas: ['Hello'], usage: SPLIT });
      const { id, res } = await send(h, route, { model: 'claude-unpriced-1' });
      const text = await expectAnswer(route, res);
      assert.equal((await requestLogOf(h, id)).cost_usd, null, route);
      if (route === 'query')
        assert.equal((parseSse(text).at(-1)?.data as { cost_usd: unknown }).cost_usd, null);
    }
  });

  it('a model priced by MODEL_PRICES_FILE (missing cache prices derived from input)', async () => {
    h.fake.queue({
      kind: 'message',
      usage: {
        input_tokens: 100,
        output_tokens: 10,
        cache_creation_input_tokens: 40,
        cache_read_input_tokens: 50,
      },
    });
    const { id, res } = await send(h, 'messages', { model: 'claude-x-1' });
    await expectAnswer('messages', res);
    // 100×1 + 40×1.25 + 50×0.1 + 10×3 = 185 µ$
    assert.equal((await requestLogOf(h, id)).cost_usd, '0.000185');
  });

  for (const route of ROUTES)
    it(`${route}: a stream the client leaves is priced from its partial usage`, async () => {
      // message_start reports 300 input + 200 cache-read tokens and 1 output token so far.
      h.fake.queue({
        kind: 'message',
        deltas: Array.from({ length: 20 }, (_, i) => `w${i} `),
        deltaDelayMs: 150,
        usage: { input_tokens: 300, cache_read_input_tokens: 200, output_tokens: 900 },
      });
      const controller = new AbortController();
      const { id, res } = await send(h, route, { signal: controller.signal });
      await readUntilThenAbort(res, 'w0', controller);
      const line = await requestLogOf(h, id);
      assert.equal(line.outcome, 'client_closed');
      // 300×2 + 200×0.2 + 1×10 = 650 µ$
      assert.equal(line.cost_usd, '0.00065');
    });

  for (const stream of [true, false])
    it(`an answer broken mid-stream (${stream ? 'streamed' : 'whole'}) is priced from its partial usage`, async () => {
      h.fake.queue({
        kind: 'message',
        deltas: ['a ', 'b ', 'c'],
        usage: { input_tokens: 300, output_tokens: 900 },
        fault: { type: 'error', afterDeltas: 1, errorType: 'overloaded_error' },
      });
      const { id, res } = await send(h, 'query', { stream });
      await res.text();
      const line = await requestLogOf(h, id);
      assert.notEqual(line.outcome, 'ok');
      // 300×2 + 1×10 = 610 µ$
      assert.equal(line.cost_usd, '0.00061');
    });

  it('a request that never reached an answer has no cost in its line', async () => {
    const before = requestLogs(h).length;
    const res = await fetch(`${h.url}/llm/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"prompt": ""}',
    });
    assert.equal(res.status, 400);
    await waitFor(() => requestLogs(h).length > before, 'the log line');
    assert.equal(requestLogs(h).at(-1)?.cost_usd, undefined);
  });
});

describe('cost metrics', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ SERVICE_API_KEYS: `alice:${ALICE}` });
  });
  after(() => h.close());

  it('llmc_cost_usd_total by model and key, llmc_unpriced_answers_total by model', async () => {
    const headers = { 'content-type': 'application/json', ...bearer(ALICE) };
    const ask = (model: string): Promise<Response> =>
      fetch(`${h.url}/llm/query`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ prompt: 'Hi', model, stream: false }),
      });
    const before = requestLogs(h).length;
    for (const model of ['claude-sonnet-5', 'claude-sonnet-5', 'claude-unpriced-1']) {
      h.fake.queue({ kind: 'message', usage: SPLIT });
      assert.equal((await ask(model)).status, 200);
    }
    await waitFor(() => requestLogs(h).length >= before + 3, 'three log lines');
    const families = await scrapeMetrics(h.url);
    const cost = metricValue(families, 'llmc_cost_usd_total', { model: 'claude-sonnet-5', key: 'alice' });
    assert.ok(Math.abs(cost - 0.039) < 1e-12, String(cost));
    assert.equal(metricValue(families, 'llmc_cost_usd_total', { model: 'claude-unpriced-1' }), 0);
    assert.equal(metricValue(families, 'llmc_unpriced_answers_total', { model: 'claude-unpriced-1' }), 1);
    assert.equal(metricValue(families, 'llmc_unpriced_answers_total', { model: 'claude-sonnet-5' }), 0);
  });
});
