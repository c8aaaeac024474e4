import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FakeScenario, RecordedRequest } from '../../src/mock/fake-upstream.ts';
import {
  deltaText,
  parseSse,
  query,
  requestLogOf,
  startHarness,
  withRequestId,
  type Harness,
} from '../helpers/harness.ts';
import { metricValue, scrapeMetrics } from '../helpers/routes.ts';

const overloaded: FakeScenario = { kind: 'error', status: 529, retryAfterMs: '10' };
const rateLimited: FakeScenario = { kind: 'error', status: 429, retryAfterMs: '10' };
const answer: FakeScenario = { kind: 'message', deltas: ['served'] };

function modelOf(req: RecordedRequest): string {
  return (req.json as { model: string }).model;
}

/** The upstream's behaviour per requested model; unknown models answer. */
function byModel(h: Harness, plan: Record<string, FakeScenario>): void {
  h.fake.setScenario((req) => plan[modelOf(req)] ?? answer);
}

function modelsAsked(h: Harness): string[] {
  return h.fake.requests.map(modelOf);
}

function chat(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...init,
  });
}

describe('FALLBACK_MODELS: the next model when one is overloaded or rate-limited, before the first byte', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      MAX_RETRIES: '1',
      ANTHROPIC_MODEL: 'model-a',
      FALLBACK_MODELS: 'model-a, model-b,model-c',
    });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
    h.logs.length = 0;
  });

  it('spends each model’s retries, then tries the next, in order; the answer names the model that served', async () => {
    byModel(h, { 'model-a': overloaded, 'model-b': rateLimited });
    const counted = { route: '/llm/query', model: 'model-c' };
    const before = metricValue(await scrapeMetrics(h.url), 'llmc_fallbacks_total', counted);
    const res = await query(h.url, { prompt: 'hi' }, withRequestId('fell-back-twice'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-served-model'), 'model-c');
    const events = parseSse(await res.text());
    assert.deepEqual(events[0], {
      event: 'start',
      data: { id: res.headers.get('x-request-id'), model: 'model-c' },
    });
    assert.equal(deltaText(events), 'served');
    assert.equal(events.at(-1)?.event, 'done');
    assert.deepEqual(modelsAsked(h), ['model-a', 'model-a', 'model-b', 'model-b', 'model-c']);
    const line = await requestLogOf(h, 'fell-back-twice');
    assert.equal(line.model, 'model-c');
    assert.equal(line.fallbacks, 2);
    assert.equal(line.attempts, 5);
    assert.equal(metricValue(await scrapeMetrics(h.url), 'llmc_fallbacks_total', counted) - before, 2);
  });

  it('reports the serving model in the JSON answer ("stream": false) and falls back on 503 too', async () => {
    byModel(h, { 'model-a': { kind: 'error', status: 503, retryAfterMs: '10' } });
    const res = await query(h.url, { prompt: 'hi', stream: false });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-served-model'), 'model-b');
    const body = (await res.json()) as { model: string; text: string };
    assert.equal(body.model, 'model-b');
    assert.equal(body.text, 'served');
    assert.deepEqual(modelsAsked(h), ['model-a', 'model-a', 'model-b']);
  });

  it('without a fallback, x-served-model names the requested model', async () => {
    const res = await query(h.url, { prompt: 'hi', model: 'model-x' }, withRequestId('no-fallback'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-served-model'), 'model-x');
    await res.text();
    assert.equal((await requestLogOf(h, 'no-fallback')).fallbacks, 0);
  });

  it('starts from the requested model’s place in the list (or the top when it is not in it)', async () => {
    byModel(h, { 'model-b': overloaded, 'model-x': overloaded });
    const fromB = await query(h.url, { prompt: 'hi', model: 'model-b', stream: false });
    assert.equal(((await fromB.json()) as { model: string }).model, 'model-c');
    assert.deepEqual(modelsAsked(h), ['model-b', 'model-b', 'model-c']);
    h.fake.requests.length = 0;
    const fromX = await query(h.url, { prompt: 'hi', model: 'model-x', stream: false });
    assert.equal(((await fromX.json()) as { model: string }).model, 'model-a');
    assert.deepEqual(modelsAsked(h), ['model-x', 'model-x', 'model-a']);
  });

  it('when every model is overloaded, the last one’s honest error comes back', async () => {
    byModel(h, { 'model-a': overloaded, 'model-b': overloaded, 'model-c': rateLimited });
    const res = await query(h.url, { prompt: 'hi' }, withRequestId('all-overloaded'));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('x-served-model'), null);
    await res.text();
    assert.equal(h.fake.requests.length, 6);
    const line = await requestLogOf(h, 'all-overloaded');
    assert.equal(line.fallbacks, 2);
    assert.equal(line.status, 429);
  });

  it('does not fall back on a 400', async () => {
    byModel(h, { 'model-a': { kind: 'error', status: 400, message: 'bad request' } });
    const res = await query(h.url, { prompt: 'hi' });
    assert.equal(res.status, 400);
    await res.text();
    assert.deepEqual(modelsAsked(h), ['model-a']);
  });

  it('never falls back after the first byte: a mid-stream error is an error event, and no second request', async () => {
    byModel(h, {
      'model-a': {
        kind: 'message',
        deltas: ['one ', 'two'],
        fault: { type: 'error', afterDeltas: 1, errorType: 'overloaded_error' },
      },
    });
    const res = await query(h.url, { prompt: 'hi' }, withRequestId('mid-stream-overloaded'));
    assert.equal(res.status, 200);
    const events = parseSse(await res.text());
    assert.deepEqual(
      events.map((e) => e.event),
      ['start', 'delta', 'error'],
    );
    // The log line comes once the handler has returned: any second request would have been made by then.
    const line = await requestLogOf(h, 'mid-stream-overloaded');
    assert.deepEqual([line.attempts, line.fallbacks], [1, 0]);
    assert.deepEqual(modelsAsked(h), ['model-a']);
  });

  it('/v1/chat/completions falls back too and names the serving model', async () => {
    byModel(h, { 'model-a': overloaded });
    const res = await chat(h.url, { model: 'model-a', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-served-model'), 'model-b');
    const completion = (await res.json()) as { model: string; choices: { message: { content: string } }[] };
    assert.equal(completion.model, 'model-b');
    assert.equal(completion.choices[0]?.message.content, 'served');
    assert.deepEqual(modelsAsked(h), ['model-a', 'model-a', 'model-b']);

    h.fake.requests.length = 0;
    const streamed = await chat(h.url, {
      model: 'model-a',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    assert.equal(streamed.headers.get('x-served-model'), 'model-b');
    const chunks = (await streamed.text())
      .split('\n\n')
      .filter((block) => block.startsWith('data: {'))
      .map((block) => JSON.parse(block.slice(6)) as { model: string });
    assert.ok(chunks.length > 0);
    assert.ok(chunks.every((chunk) => chunk.model === 'model-b'));
    assert.deepEqual(modelsAsked(h), ['model-a', 'model-a', 'model-b']);
  });

  it('/v1/messages: the fallback request is the client’s bytes with only the model value replaced', async () => {
    byModel(h, { 'model-a': overloaded });
    const raw =
      '{ "metadata": {"model": "model-a"},\n  "model" : "model-a", "max_tokens": 16, "stream": true, "note": "é\\u00e9",\n  "messages": [{"role": "user", "content": "hi"}] }';
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: raw,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-served-model'), 'model-b');
    const text = await res.text();
    assert.match(text, /"model":"model-b"/);
    const sent = h.fake.requests.map((r) => r.body.toString('utf8'));
    assert.deepEqual(sent, [raw, raw, raw.replace('"model" : "model-a"', '"model" : "model-b"')]);
  });
});

describe('FALLBACK_MODELS with MAX_RETRIES=0', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      MAX_RETRIES: '0',
      ANTHROPIC_MODEL: 'model-a',
      FALLBACK_MODELS: 'model-b,model-c',
    });
  });
  after(() => h.close());

  it('asks each model once', async () => {
    byModel(h, { 'model-a': overloaded, 'model-b': rateLimited });
    const res = await query(h.url, { prompt: 'hi', stream: false });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { model: string }).model, 'model-c');
    assert.deepEqual(modelsAsked(h), ['model-a', 'model-b', 'model-c']);
  });
});
