/**
 * Admission by construction: every guarded route that the app registers — whatever it is and however
 * it answers — is refused without a key and refused by each limit, and the upstream sees nothing.
 * A guarded route added later without a sample request here fails the first test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { requestLogs, startHarness, type Harness } from '../helpers/harness.ts';
import { clockInsideMinute } from '../helpers/clock.ts';
import { bearer, readUntil } from '../helpers/routes.ts';
import { waitFor } from '../helpers/wait.ts';

const ALICE = 'alice-key-0123456789abcdef';
const MODEL = 'claude-sonnet-5';
const MESSAGES = [{ role: 'user', content: 'Hi' }];

/** The stored answers' and the reports' routes never call the upstream: they count against `rpm` only. */
const RPM_ONLY = new Set([
  '/llm/answers/:id/events',
  '/llm/answers/:id',
  '/llm/answers/:id/cancel',
  '/v1/organizations/usage_report/messages',
  '/v1/organizations/cost_report',
]);
/** A report's one required parameter: the start of the day before. */
const REPORT_QUERY = `?starting_at=${new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)}T00:00:00Z`;
/** Replaced in a sample's path by an answer of alice's (see `withAnswer`). */
const ANSWER = '{answer}';
const answers = new WeakMap<Harness, string>();

interface Sample {
  url?: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: unknown;
}

/** A valid request for each guarded path (GET routes also answer HEAD, and in both API shapes). */
const SAMPLES: Record<string, Sample[]> = {
  '/llm/query': [{ method: 'POST', path: '/llm/query', body: { prompt: 'Hi', max_tokens: 16 } }],
  '/v1/messages': [
    {
      method: 'POST',
      path: '/v1/messages',
      headers: { 'anthropic-version': '2023-06-01' },
      body: { model: MODEL, max_tokens: 16, messages: MESSAGES },
    },
  ],
  '/v1/messages/count_tokens': [
    {
      method: 'POST',
      path: '/v1/messages/count_tokens',
      headers: { 'anthropic-version': '2023-06-01' },
      body: { model: MODEL, messages: MESSAGES },
    },
  ],
  '/v1/chat/completions': [
    {
      method: 'POST',
      path: '/v1/chat/completions',
      body: { model: MODEL, max_tokens: 16, messages: MESSAGES },
    },
  ],
  '/v1/models': [
    { method: 'GET', path: '/v1/models', headers: { 'anthropic-version': '2023-06-01' } },
    { method: 'GET', path: '/v1/models' },
    { method: 'HEAD', path: '/v1/models' },
  ],
  '/llm/answers/:id/events': [{ method: 'GET', path: `/llm/answers/${ANSWER}/events` }],
  '/llm/answers/:id': [
    { method: 'GET', path: `/llm/answers/${ANSWER}` },
    { method: 'HEAD', path: `/llm/answers/${ANSWER}` },
  ],
  '/llm/answers/:id/cancel': [{ method: 'POST', path: `/llm/answers/${ANSWER}/cancel` }],
  '/v1/organizations/usage_report/messages': [
    { method: 'GET', path: `/v1/organizations/usage_report/messages${REPORT_QUERY}` },
    { method: 'HEAD', path: `/v1/organizations/usage_report/messages${REPORT_QUERY}` },
  ],
  '/v1/organizations/cost_report': [
    { method: 'GET', path: `/v1/organizations/cost_report${REPORT_QUERY}` },
    { method: 'HEAD', path: `/v1/organizations/cost_report${REPORT_QUERY}` },
  ],
  '/v1/models/:id': [
    { method: 'GET', path: `/v1/models/${MODEL}`, headers: { 'anthropic-version': '2023-06-01' } },
    { method: 'GET', path: `/v1/models/${MODEL}` },
    { method: 'HEAD', path: `/v1/models/${MODEL}` },
  ],
};

function send(h: Harness, sample: Sample, key?: string): Promise<Response> {
  const headers: Record<string, string> = { ...sample.headers, ...(key === undefined ? {} : bearer(key)) };
  if (sample.body !== undefined) headers['content-type'] = 'application/json';
  const answer = answers.get(h) ?? '00000000-0000-4000-8000-000000000000';
  return fetch(`${h.url}${sample.path.replace(ANSWER, answer)}`, {
    method: sample.method,
    headers,
    ...(sample.body === undefined ? {} : { body: JSON.stringify(sample.body) }),
  });
}

function guardedSamples(h: Harness): Sample[] {
  const guarded = h.app.routeTable.list().filter((route) => route.guarded);
  assert.ok(guarded.length >= 6, `guarded routes: ${guarded.map((r) => r.url).join(', ')}`);
  return guarded.flatMap((route) => {
    const samples = SAMPLES[route.url];
    assert.ok(samples, `the guarded route ${route.url} has no sample request in this test: add one`);
    for (const method of route.methods)
      assert.ok(
        samples.some((s) => s.method === method),
        `${method} ${route.url} has no sample`,
      );
    return samples.map((sample) => ({ ...sample, url: route.url }));
  });
}

/** Makes a finished answer of alice's, for the samples of the stored answers' routes (one request). */
async function withAnswer(h: Harness): Promise<void> {
  const res = await fetch(`${h.url}/llm/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...bearer(ALICE) },
    body: JSON.stringify({ prompt: 'Hi', max_tokens: 16, resumable: true }),
  });
  assert.equal(res.status, 200);
  await res.text();
  answers.set(h, String(res.headers.get('x-answer-id')));
}

/**
 * Each guarded sample is refused with `status`, and none of them reaches the upstream. With
 * `rpmOnly` (a token or stream limit), the stored answers' routes are not refused.
 */
async function expectAllRefused(
  h: Harness,
  status: number,
  key: string | undefined,
  what: string,
  rpmOnly = false,
): Promise<void> {
  const before = h.fake.requests.length;
  for (const sample of guardedSamples(h)) {
    const res = await send(h, sample, key);
    if (rpmOnly && RPM_ONLY.has(sample.url ?? '')) {
      assert.equal(res.status, 200, `${sample.method} ${sample.path}: counts against rpm only (${what})`);
      await res.arrayBuffer();
      continue;
    }
    assert.equal(
      res.status,
      status,
      `${sample.method} ${sample.path} ${JSON.stringify(sample.headers ?? {})}: ${what}`,
    );
    await res.arrayBuffer();
  }
  assert.equal(h.fake.requests.length, before, `no refused request reached the upstream (${what})`);
}

describe('every guarded route is authenticated and admitted', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ SERVICE_API_KEYS: `alice:${ALICE}` });
    await withAnswer(h);
  });
  after(async () => {
    h.app.server.closeAllConnections();
    await h.close();
  });

  it('with a key, each sample request is answered by the upstream', async () => {
    for (const sample of guardedSamples(h)) {
      const res = await send(h, sample, ALICE);
      assert.equal(res.status, 200, `${sample.method} ${sample.path}`);
      await res.arrayBuffer();
    }
  });

  it('without a key or with a wrong one: 401, nothing upstream', async () => {
    await expectAllRefused(h, 401, undefined, 'no key');
    await expectAllRefused(h, 401, 'not-a-key-0123456789', 'wrong key');
  });
});

describe('every guarded route counts against every limit', () => {
  const harnesses: Harness[] = [];
  async function harness(env: Record<string, string>): Promise<Harness> {
    // Exact per-minute numbers: the limits' clock starts inside a minute.
    const h = await startHarness(
      { SERVICE_API_KEYS: `alice:${ALICE}`, ...env },
      { now: clockInsideMinute() },
    );
    harnesses.push(h);
    return h;
  }
  after(async () => {
    for (const h of harnesses) {
      h.app.server.closeAllConnections();
      await h.close();
    }
  });

  it('RATE_LIMIT_RPM: each guarded route is one request (the OpenAI-shaped model list included)', async () => {
    const samples = guardedSamples(await harness({}));
    // One more for the answer the stored answers' routes read.
    const h = await harness({ RATE_LIMIT_RPM: String(samples.length + 1) });
    await withAnswer(h);
    for (const sample of samples) {
      const res = await send(h, sample, ALICE);
      assert.equal(res.status, 200, `${sample.method} ${sample.path}`);
      await res.arrayBuffer();
    }
    await expectAllRefused(h, 429, ALICE, 'over RATE_LIMIT_RPM');
  });

  for (const [name, env] of [
    ['RATE_LIMIT_TPM', { RATE_LIMIT_TPM: '100' }],
    ['TOKEN_BUDGET_DAILY', { TOKEN_BUDGET_DAILY: '100' }],
  ] as const) {
    it(`${name}: once the tokens are spent, every guarded route is refused`, async () => {
      const h = await harness(env);
      h.fake.queue({ kind: 'message', deltas: ['spent'], usage: { input_tokens: 90, output_tokens: 60 } });
      await withAnswer(h);
      await waitFor(() => requestLogs(h).length >= 1, 'the first request to finish');
      await expectAllRefused(h, 429, ALICE, `over ${name}`, true);
    });
  }

  it('MAX_CONCURRENT_STREAMS: while one answer is open, every guarded route is refused', async () => {
    const h = await harness({ MAX_CONCURRENT_STREAMS: '1' });
    await withAnswer(h);
    await waitFor(() => requestLogs(h).length >= 1, 'the first request to finish');
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 200 }, (_, i) => `w${i} `),
      deltaDelayMs: 50,
    });
    const controller = new AbortController();
    const open = await fetch(`${h.url}/llm/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(ALICE) },
      body: JSON.stringify({ prompt: 'Hi' }),
      signal: controller.signal,
    });
    const { reader } = await readUntil(open, 'w1 ');
    await expectAllRefused(h, 429, ALICE, 'over MAX_CONCURRENT_STREAMS', true);
    controller.abort();
    await reader.cancel().catch(() => undefined);
  });
});
