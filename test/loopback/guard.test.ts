/**
 * Client keys, limits and CORS over HTTP, against the real service (in-memory limit store) in front
 * of the fake upstream. Every route answers in its own error shape.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FakeScenario } from '../../src/mock/fake-upstream.ts';
import { requestLogs, SECRET_KEY, startHarness, type Harness } from '../helpers/harness.ts';
import {
  ROUTES,
  apiKey,
  ask,
  bearer,
  expectAnswer,
  expectError,
  metricValue,
  rateLimitOf,
  readUntil,
  readUntilThenAbort,
  retryAfterOf,
  scrapeMetrics,
  type MetricFamilies,
  type RouteName,
} from '../helpers/routes.ts';
import { clockInsideMinute } from '../helpers/clock.ts';
import { waitFor } from '../helpers/wait.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-fedcba9876543210';
const CAROL = 'carol-key-00112233445566778899';

function metrics(h: Harness): Promise<MetricFamilies> {
  return scrapeMetrics(h.url);
}

/**
 * Waits until `n` requests have closed. The lease is settled from the real usage just before the
 * line is written, so after this the next admission sees the settled counters.
 */
function closedRequests(h: Harness, n: number): Promise<void> {
  return waitFor(() => requestLogs(h).length >= n, `${n} request log lines`);
}

/** A streamed answer of 20 paced deltas `w0 w1 …` reporting `usage`. */
function paced(
  usage: Extract<FakeScenario, { kind: 'message' }>['usage'] = {},
  deltaDelayMs = 150,
): FakeScenario {
  return { kind: 'message', deltas: Array.from({ length: 20 }, (_, i) => `w${i} `), deltaDelayMs, usage };
}

describe('client keys', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ SERVICE_API_KEYS: `alice:${ALICE}, bob:${BOB}` });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
  });

  for (const route of ROUTES) {
    it(`${route}: a missing or wrong key is a 401 in the route's shape, and nothing goes upstream`, async () => {
      const missing = await expectError(route, await ask(h.url, route), 401, 'authentication_error');
      assert.match(missing.message, /Authorization: Bearer/);
      await expectError(
        route,
        await ask(h.url, route, { headers: bearer('alice-key-0123456789abcdeX') }),
        401,
        'authentication_error',
      );
      await expectError(
        route,
        await ask(h.url, route, { headers: apiKey('nobody-key-0123456789') }),
        401,
        'authentication_error',
      );
      await expectError(
        route,
        await ask(h.url, route, { headers: { authorization: `Basic ${ALICE}` } }),
        401,
        'authentication_error',
      );
      assert.equal(h.fake.requests.length, 0);
    });
  }

  for (const route of ROUTES) {
    it(`${route}: Authorization: Bearer and x-api-key both work; the client's key is never forwarded`, async () => {
      await expectAnswer(route, await ask(h.url, route, { headers: bearer(ALICE) }));
      await expectAnswer(route, await ask(h.url, route, { headers: apiKey(BOB), stream: false }), false);
      assert.equal(h.fake.requests.length, 2);
      for (const recorded of h.fake.requests) {
        assert.equal(recorded.headers['x-api-key'], SECRET_KEY, 'the service sends its own key upstream');
        assert.equal(recorded.headers.authorization, undefined);
        const everything = JSON.stringify(recorded.headers) + recorded.body.toString('utf8');
        assert.ok(
          !everything.includes(ALICE) && !everything.includes(BOB),
          'a client key reached the upstream',
        );
      }
    });
  }

  it('/healthz, /readyz, /docs and /openapi.json stay open', async () => {
    for (const path of ['/healthz', '/readyz', '/docs', '/openapi.json']) {
      const res = await fetch(`${h.url}${path}`);
      assert.equal(res.status, 200, path);
      await res.arrayBuffer();
    }
  });

  it('/metrics stays open unless METRICS_REQUIRE_KEY=true', async () => {
    const open = await fetch(`${h.url}/metrics`);
    assert.equal(open.status, 200);
    await open.arrayBuffer();
    const guarded = await startHarness({ SERVICE_API_KEYS: `alice:${ALICE}`, METRICS_REQUIRE_KEY: 'true' });
    try {
      const refused = await fetch(`${guarded.url}/metrics`);
      assert.equal(refused.status, 401);
      assert.equal(
        ((await refused.json()) as { error: { type: string } }).error.type,
        'authentication_error',
      );
      const wrong = await fetch(`${guarded.url}/metrics`, { headers: { authorization: `Bearer ${BOB}` } });
      assert.equal(wrong.status, 401);
      await wrong.arrayBuffer();
      const allowed = await fetch(`${guarded.url}/metrics`, {
        headers: { authorization: `Bearer ${ALICE}` },
      });
      assert.equal(allowed.status, 200);
      assert.match(await allowed.text(), /llmc_requests_total/);
    } finally {
      await guarded.close();
    }
  });

  it('a key never appears in a response or a log line; the log line names the key', async () => {
    const before = requestLogs(h).length;
    const wrong = 'alice-key-0123456789abcdeZ';
    const seen: string[] = [];
    const keep = async (res: Response): Promise<void> => {
      seen.push(JSON.stringify([...res.headers]), await res.text());
    };
    for (const route of ROUTES) {
      await keep(await ask(h.url, route, { headers: bearer(ALICE) }));
      await keep(await ask(h.url, route, { headers: apiKey(BOB), stream: false }));
      await keep(await ask(h.url, route, { headers: bearer(wrong) }));
    }
    h.fake.queue(
      { kind: 'error', status: 529 },
      { kind: 'error', status: 529 },
      { kind: 'error', status: 529 },
    );
    await keep(await ask(h.url, 'query', { headers: bearer(ALICE) }));
    await closedRequests(h, before + 10);
    const logs = h.logs.join('');
    for (const secret of [ALICE, BOB, wrong, SECRET_KEY]) {
      assert.ok(!seen.some((text) => text.includes(secret)), 'a key was sent back to the client');
      assert.ok(!logs.includes(secret), 'a key was logged');
    }
    const lines = requestLogs(h).slice(before);
    assert.equal(lines.length, 10);
    assert.deepEqual(
      lines.map((line) => [line.status, line.key]),
      [
        [200, 'alice'],
        [200, 'bob'],
        [401, undefined],
        [200, 'alice'],
        [200, 'bob'],
        [401, undefined],
        [200, 'alice'],
        [200, 'bob'],
        [401, undefined],
        [503, 'alice'],
      ],
    );
  });
});

describe('RATE_LIMIT_RPM', () => {
  let h: Harness;
  const keys: Record<RouteName, string> = { query: ALICE, messages: BOB, chat: CAROL };
  before(async () => {
    h = await startHarness({
      SERVICE_API_KEYS: `alice:${ALICE},bob:${BOB},carol:${CAROL}`,
      RATE_LIMIT_RPM: '2',
    });
  });
  after(() => h.close());

  for (const route of ROUTES) {
    it(`${route}: answers carry RateLimit-*; over the limit → 429 with Retry-After in the route's shape`, async () => {
      const headers = bearer(keys[route]);
      const streamed = await ask(h.url, route, { headers });
      const allowed = rateLimitOf(streamed.headers);
      assert.deepEqual([allowed.limit, allowed.remaining], [2, 1]);
      assert.ok(allowed.reset <= 60, `RateLimit-Reset ${allowed.reset}`);
      await expectAnswer(route, streamed);
      const plain = await ask(h.url, route, { headers, stream: false });
      assert.equal(rateLimitOf(plain.headers).remaining, 0);
      await expectAnswer(route, plain, false);

      const upstreamCalls = h.fake.requests.length;
      const refused = await expectError(route, await ask(h.url, route, { headers }), 429, 'rate_limit_error');
      assert.match(refused.message, /2 requests per minute/);
      const retryAfter = retryAfterOf(refused.headers);
      assert.ok(retryAfter <= 90, `Retry-After ${retryAfter}`);
      const state = rateLimitOf(refused.headers);
      assert.equal(state.limit, 2);
      assert.equal(state.remaining, 0);
      assert.ok(state.reset <= 60);
      assert.equal(h.fake.requests.length, upstreamCalls, 'a refused request went upstream');
    });
  }

  it('counts the rejections in /metrics by key name and reason', async () => {
    const families = await metrics(h);
    for (const name of ['alice', 'bob', 'carol']) {
      assert.equal(
        metricValue(families, 'llmc_rate_limit_rejections_total', { key: name, reason: 'rpm' }),
        1,
        name,
      );
    }
    assert.equal(metricValue(families, 'llmc_rate_limit_rejections_total', {}), 3);
  });
});

describe('per-key overrides from SERVICE_API_KEYS_FILE', () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llmc-keys-'));
    const file = join(dir, 'keys');
    writeFileSync(
      file,
      [
        '# name:key [rpm=] [tpm=] [daily=] [streams=]',
        `alice:${ALICE} rpm=1`,
        `bob:${BOB}`,
        '',
        `carol:${CAROL} rpm=0   # no limit`,
      ].join('\n'),
    );
    h = await startHarness({ SERVICE_API_KEYS_FILE: file, RATE_LIMIT_RPM: '3' });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a key with rpm=1 gets one request, the default (3) applies to a key without override, rpm=0 lifts it', async () => {
    const alice = await ask(h.url, 'query', { headers: bearer(ALICE), stream: false });
    assert.equal(rateLimitOf(alice.headers).limit, 1);
    await expectAnswer('query', alice, false);
    const refused = await expectError(
      'query',
      await ask(h.url, 'query', { headers: bearer(ALICE) }),
      429,
      'rate_limit_error',
    );
    assert.equal(rateLimitOf(refused.headers).limit, 1);

    const bob: (number | null)[][] = [];
    for (let i = 0; i < 4; i++) {
      const res = await ask(h.url, 'messages', { headers: apiKey(BOB), stream: false });
      await res.arrayBuffer();
      bob.push([res.status, Number(res.headers.get('ratelimit-limit'))]);
    }
    assert.deepEqual(bob, [
      [200, 3],
      [200, 3],
      [200, 3],
      [429, 3],
    ]);

    for (let i = 0; i < 5; i++) {
      const res = await ask(h.url, 'chat', { headers: bearer(CAROL), stream: false });
      assert.equal(res.headers.get('ratelimit-limit'), null, 'no limit to report');
      await expectAnswer('chat', res, false);
    }
  });
});

describe('without client keys the limits apply to the client as a whole', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ RATE_LIMIT_RPM: '2' });
  });
  after(() => h.close());

  it('whatever key a request carries, they share one limit', async () => {
    await expectAnswer('query', await ask(h.url, 'query', { headers: bearer(ALICE) }));
    await expectAnswer('chat', await ask(h.url, 'chat', { headers: apiKey(BOB) }));
    const refused = await expectError('messages', await ask(h.url, 'messages'), 429, 'rate_limit_error');
    assert.equal(rateLimitOf(refused.headers).limit, 2);
    await closedRequests(h, 3);
    const lines = requestLogs(h);
    assert.deepEqual(
      lines.map((line) => line.status),
      [200, 200, 429],
    );
    assert.deepEqual(
      lines.slice(0, 2).map((line) => line.key),
      ['anonymous', 'anonymous'],
    );
    const families = await metrics(h);
    assert.equal(
      metricValue(families, 'llmc_rate_limit_rejections_total', { key: 'anonymous', reason: 'rpm' }),
      1,
    );
  });
});

describe('token limits settle from the real usage', () => {
  let h: Harness;
  let dir: string;
  const cancelKeys: Record<RouteName, string> = {
    query: 'cancel-query-key-0123456789',
    messages: 'cancel-messages-key-0123456789',
    chat: 'cancel-chat-key-0123456789',
  };
  const DAILY = 'daily-key-0123456789abcdef';
  const TPM = 'tpm-key-0123456789abcdef';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llmc-keys-'));
    const file = join(dir, 'keys');
    const lines = [`daily:${DAILY} daily=100`, `tpm:${TPM} tpm=1000`];
    for (const route of ROUTES) lines.push(`cancel-${route}:${cancelKeys[route]} daily=10000`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    // Exact per-minute numbers: no window boundary for the next 59 s of the limits' clock.
    h = await startHarness({ SERVICE_API_KEYS_FILE: file }, { now: clockInsideMinute() });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    h.fake.reset();
  });

  it('TOKEN_BUDGET_DAILY: max_tokens is reserved, then input + output + cache tokens are counted', async () => {
    const headers = bearer(DAILY);
    let closed = requestLogs(h).length;
    const next = async (): Promise<void> => {
      await closedRequests(h, ++closed);
    };
    // 1: reserves 50, really uses 30 + 20 + 10 (cache read) = 60.
    h.fake.queue({
      kind: 'message',
      usage: { input_tokens: 30, output_tokens: 20, cache_read_input_tokens: 10 },
    });
    const first = await ask(h.url, 'query', { headers, maxTokens: 50 });
    assert.deepEqual([rateLimitOf(first.headers).limit, rateLimitOf(first.headers).remaining], [100, 50]);
    await expectAnswer('query', first);
    await next();
    // 2: 100 - 60 used - 10 reserved = 30 left; uses 5 + 5 + 5 (cache creation) = 15 (passthrough, not streamed).
    h.fake.queue({
      kind: 'message',
      usage: { input_tokens: 5, output_tokens: 5, cache_creation_input_tokens: 5 },
    });
    const second = await ask(h.url, 'messages', { headers, maxTokens: 10, stream: false });
    assert.equal(rateLimitOf(second.headers).remaining, 30);
    await expectAnswer('messages', second, false);
    await next();
    // 3: 100 - 75 - 20 = 5 left; uses 20 (streamed chat).
    h.fake.queue({ kind: 'message', usage: { input_tokens: 10, output_tokens: 10 } });
    const third = await ask(h.url, 'chat', { headers, maxTokens: 20 });
    assert.equal(rateLimitOf(third.headers).remaining, 5);
    await expectAnswer('chat', third);
    await next();
    // 4: 95 used + 10 > 100: refused until midnight UTC.
    const untilMidnight = (): number => (86_400_000 - (h.now() % 86_400_000)) / 1000;
    const atMost = Math.ceil(untilMidnight());
    const refused = await expectError(
      'query',
      await ask(h.url, 'query', { headers, maxTokens: 10 }),
      429,
      'rate_limit_error',
    );
    const atLeast = Math.floor(untilMidnight());
    assert.match(refused.message, /Daily token budget of 100 tokens/);
    const retryAfter = retryAfterOf(refused.headers);
    assert.ok(
      retryAfter >= atLeast && retryAfter <= atMost,
      `Retry-After ${retryAfter}, midnight in ${atLeast}…${atMost} s`,
    );
    assert.deepEqual([rateLimitOf(refused.headers).limit, rateLimitOf(refused.headers).remaining], [100, 5]);
    await next();
    // 5: 95 + 5 fits exactly.
    const last = await ask(h.url, 'messages', { headers, maxTokens: 5 });
    assert.equal(rateLimitOf(last.headers).remaining, 0);
    await expectAnswer('messages', last);
    assert.equal(h.fake.requests.length, 4);
  });

  it('RATE_LIMIT_TPM: more than reserved is added, less gives the rest back', async () => {
    const headers = apiKey(TPM);
    let closed = requestLogs(h).length;
    h.fake.queue(
      { kind: 'message', usage: { input_tokens: 120, output_tokens: 180, cache_creation_input_tokens: 50 } },
      { kind: 'message', usage: { input_tokens: 25, output_tokens: 15 } },
      { kind: 'message', usage: { input_tokens: 1, output_tokens: 1 } },
    );
    const first = await ask(h.url, 'query', { headers, maxTokens: 200, stream: false });
    assert.equal(rateLimitOf(first.headers).remaining, 800);
    await expectAnswer('query', first, false);
    await closedRequests(h, ++closed);
    const second = await ask(h.url, 'messages', { headers, maxTokens: 100 });
    assert.equal(rateLimitOf(second.headers).remaining, 1000 - 350 - 100);
    await expectAnswer('messages', second);
    await closedRequests(h, ++closed);
    const refused = await expectError(
      'chat',
      await ask(h.url, 'chat', { headers, maxTokens: 700 }),
      429,
      'rate_limit_error',
    );
    assert.match(refused.message, /1000 tokens per minute/);
    assert.equal(rateLimitOf(refused.headers).remaining, 1000 - 390);
    retryAfterOf(refused.headers);
    const fits = await ask(h.url, 'chat', { headers, maxTokens: 600 });
    assert.equal(rateLimitOf(fits.headers).remaining, 10);
    await expectAnswer('chat', fits);
  });

  for (const route of ROUTES) {
    it(`${route}: a stream the client cancels after message_start still counts its input tokens`, async () => {
      const headers = bearer(cancelKeys[route]);
      const closed = requestLogs(h).length;
      // message_start reports 300 input + 200 cache-read tokens (and 1 output token so far).
      h.fake.queue(paced({ input_tokens: 300, cache_read_input_tokens: 200, output_tokens: 900 }));
      const controller = new AbortController();
      const res = await ask(h.url, route, { headers, maxTokens: 1000, signal: controller.signal });
      assert.equal(rateLimitOf(res.headers).remaining, 10_000 - 1000);
      await readUntilThenAbort(res, 'w0', controller);
      await closedRequests(h, closed + 1);
      const line = requestLogs(h).at(-1);
      assert.equal(line?.outcome, 'client_closed');
      assert.equal(line.key, `cancel-${route}`);
      assert.equal(line.input_tokens, 300, 'the cancelled answer logged its input tokens');
      await waitFor(() => h.fake.requests[0]?.finishedAt !== undefined, 'the upstream request to close');
      assert.equal(h.fake.requests[0]?.closedEarly, true, 'the upstream request was aborted');

      const next = await ask(h.url, route, { headers, maxTokens: 10, stream: false });
      assert.equal(
        rateLimitOf(next.headers).remaining,
        10_000 - 501 - 10,
        'the partial usage (501) was counted',
      );
      await expectAnswer(route, next, false);
    });
  }
});

describe('MAX_CONCURRENT_STREAMS', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ SERVICE_API_KEYS: `alice:${ALICE},bob:${BOB}`, MAX_CONCURRENT_STREAMS: '1' });
  });
  after(() => h.close());

  it('an open stream blocks a second answer for the same key with 429 until it ends', async () => {
    h.fake.queue(paced({}, 200));
    const open = await ask(h.url, 'query', { headers: bearer(ALICE), maxTokens: 64 });
    assert.equal(open.status, 200);
    const pending = expectAnswer('query', open);
    for (const route of ROUTES) {
      const refused = await expectError(
        route,
        await ask(h.url, route, { headers: bearer(ALICE) }),
        429,
        'rate_limit_error',
      );
      assert.match(refused.message, /at most 1 at once/);
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.deepEqual([rateLimitOf(refused.headers).limit, rateLimitOf(refused.headers).remaining], [1, 0]);
    }
    // Another key has its own streams.
    await expectAnswer('chat', await ask(h.url, 'chat', { headers: bearer(BOB) }));
    const text = await pending;
    assert.match(text, /w19 /, 'the open stream was not disturbed');
    await waitFor(
      () => requestLogs(h).some((line) => line.key === 'alice' && line.status === 200),
      'the open stream to close',
    );
    await expectAnswer('messages', await ask(h.url, 'messages', { headers: bearer(ALICE) }));
    const families = await metrics(h);
    assert.equal(
      metricValue(families, 'llmc_rate_limit_rejections_total', { key: 'alice', reason: 'streams' }),
      3,
    );
  });
});

describe('MAX_UPSTREAM_CONCURRENCY', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ MAX_UPSTREAM_CONCURRENCY: '1', UPSTREAM_READ_TIMEOUT: '30' });
  });
  after(() => h.close());

  it('with the one slot held by a stalled stream, the next request waits briefly, then 503 with Retry-After', async () => {
    h.fake.queue({ kind: 'message', deltas: ['w0 ', 'w1 '], fault: { type: 'stall', afterDeltas: 1 } });
    const controller = new AbortController();
    await readUntil(await ask(h.url, 'query', { signal: controller.signal }), 'w0');
    for (const route of ROUTES) {
      const started = performance.now();
      const busy = await expectError(route, await ask(h.url, route), 503, 'overloaded_error');
      const waited = performance.now() - started;
      assert.ok(waited >= 1_500, `answered after ${waited} ms, without queueing`);
      assert.match(busy.message, /in flight/);
      assert.equal(busy.headers.get('retry-after'), '1');
    }
    assert.equal(h.fake.requests.length, 1, 'no second request reached the upstream');
    controller.abort();
    await waitFor(() => requestLogs(h).length >= 4, 'the stalled stream to close');
    await expectAnswer('chat', await ask(h.url, 'chat'));
    const families = await metrics(h);
    assert.equal(
      metricValue(families, 'llmc_rate_limit_rejections_total', {
        key: 'anonymous',
        reason: 'upstream_busy',
      }),
      3,
    );
  });
});

describe('CORS_ORIGINS', () => {
  const ORIGIN = 'https://app.example.com';
  let h: Harness;
  before(async () => {
    h = await startHarness({
      CORS_ORIGINS: ORIGIN,
      SERVICE_API_KEYS: `alice:${ALICE}`,
      RATE_LIMIT_RPM: '100',
    });
  });
  after(() => h.close());

  const preflight = (origin: string): Promise<Response> =>
    fetch(`${h.url}/llm/query`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });

  it('a preflight from the allowed origin gets the allow headers, without a key', async () => {
    const res = await preflight(ORIGIN);
    assert.ok(res.status === 204 || res.status === 200, String(res.status));
    assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(res.headers.get('access-control-allow-methods') ?? '', /POST/);
    const allowed = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const header of ['authorization', 'content-type', 'x-api-key'])
      assert.ok(allowed.includes(header), allowed);
  });

  it('another origin gets none', async () => {
    const res = await preflight('https://evil.example.com');
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(res.headers.get('access-control-allow-methods'), null);
    assert.equal(res.headers.get('access-control-allow-headers'), null);
    const answer = await ask(h.url, 'query', {
      headers: { ...bearer(ALICE), origin: 'https://evil.example.com' },
    });
    assert.equal(answer.headers.get('access-control-allow-origin'), null);
    await expectAnswer('query', answer);
  });

  it('a streamed /llm/query answer (hijacked) carries the CORS and RateLimit headers', async () => {
    const res = await ask(h.url, 'query', { headers: { ...bearer(ALICE), origin: ORIGIN } });
    assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
    const exposed = (res.headers.get('access-control-expose-headers') ?? '').toLowerCase();
    for (const header of ['retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'])
      assert.ok(exposed.includes(header), exposed);
    assert.equal(rateLimitOf(res.headers).limit, 100);
    await expectAnswer('query', res);
  });

  it('a 401 to the allowed origin is readable by the browser app', async () => {
    const res = await ask(h.url, 'chat', { headers: { origin: ORIGIN } });
    assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
    await expectError('chat', res, 401, 'authentication_error');
  });
});
