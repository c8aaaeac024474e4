/**
 * Budgets in dollars at the HTTP boundary (memory store): a request reserves its worst-case cost,
 * settled from what its answer cost (a cancelled stream included); over a budget, 429 with
 * Retry-After until the budget renews and RateLimit-* in cents; an unpriced model under a dollar
 * budget is a 400 naming the model and MODEL_PRICES_FILE.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { requestLogOf, startHarness, type Harness } from '../helpers/harness.ts';
import {
  ROUTES,
  bearer,
  expectAnswer,
  expectError,
  rateLimitOf,
  readUntilThenAbort,
  retryAfterOf,
  type RouteName,
} from '../helpers/routes.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdefgh';
const CAROL = 'carol-key-0123456789abcdef';
const DAVE = 'dave-key-0123456789abcdefg';
const ERIN = 'erin-key-0123456789abcdefg';

/** 15 January 2026, 12:00 UTC: 12 h to the next UTC midnight, 16.5 days to 1 February. */
const NOON = Date.UTC(2026, 0, 15, 12, 0, 0);
const UNTIL_MIDNIGHT_S = 12 * 3600;
const UNTIL_FEBRUARY_S = 16.5 * 86_400;

const PATHS: Record<RouteName, string> = {
  query: '/llm/query',
  messages: '/v1/messages',
  chat: '/v1/chat/completions',
};

function bodyOf(route: RouteName, model: string, maxTokens: number, stream: boolean): unknown {
  return route === 'query'
    ? { prompt: 'Hi', model, max_tokens: maxTokens, stream }
    : { model, max_tokens: maxTokens, stream, messages: [{ role: 'user', content: 'Hi' }] };
}

/** The upstream request body the /v1/messages route sends for `bodyOf('messages', …)`: its bytes as they go. */
function messagesBytes(model: string, maxTokens: number, stream: boolean): number {
  return Buffer.byteLength(JSON.stringify(bodyOf('messages', model, maxTokens, stream)));
}

let n = 0;

function send(
  h: Harness,
  route: RouteName,
  key: string,
  options: { model?: string; maxTokens?: number; stream?: boolean; signal?: AbortSignal } = {},
): Promise<Response> {
  const stream = options.stream ?? false;
  return fetch(`${h.url}${PATHS[route]}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'anthropic-version': '2023-06-01',
      'x-request-id': `usd-${++n}`,
      ...bearer(key),
    },
    body: JSON.stringify(bodyOf(route, options.model ?? 'claude-sonnet-5', options.maxTokens ?? 16, stream)),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** claude-sonnet-5's worst case in nano-dollars: prompt bytes at $4 (1-hour writes), max_tokens at $10. */
function worstNano(bytes: number, maxTokens: number): number {
  return bytes * 4000 + maxTokens * 10_000;
}

describe('budgets in dollars', () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llmc-usd-'));
    const keys = join(dir, 'keys');
    writeFileSync(
      keys,
      [
        `alice:${ALICE} usd_daily=1`,
        `bob:${BOB}`,
        `carol:${CAROL} usd_daily=1`,
        `dave:${DAVE} usd_monthly=0.000001`,
        `erin:${ERIN} usd_daily=1`,
      ].join('\n'),
    );
    h = await startHarness({ SERVICE_API_KEYS_FILE: keys }, { now: () => NOON });
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    h.fake.reset();
  });

  it('reserves the worst case, settles from the real cost, then refuses with 429 until midnight', async () => {
    const budget = 1_000_000_000; // $1 in nano-dollars
    const worst = worstNano(messagesBytes('claude-sonnet-5', 50_000, false), 50_000);
    // 20 × $2 + 30000 × $10 per million tokens = $0.30004
    const actual = 300_040_000;
    h.fake.queue(
      { kind: 'message', usage: { input_tokens: 20, output_tokens: 30_000 } },
      { kind: 'message', usage: { input_tokens: 20, output_tokens: 30_000 } },
    );
    const first = await send(h, 'messages', ALICE, { maxTokens: 50_000 });
    assert.deepEqual(rateLimitOf(first.headers), {
      limit: 100,
      remaining: Math.floor((budget - worst) / 10_000_000),
      reset: UNTIL_MIDNIGHT_S,
    });
    await expectAnswer('messages', first, false);
    await requestLogOf(h, `usd-${n}`);
    const second = await send(h, 'messages', ALICE, { maxTokens: 50_000 });
    assert.equal(rateLimitOf(second.headers).remaining, Math.floor((budget - actual - worst) / 10_000_000));
    await expectAnswer('messages', second, false);
    await requestLogOf(h, `usd-${n}`);
    for (const route of ROUTES) {
      const refused = await expectError(
        route,
        await send(h, route, ALICE, { maxTokens: 50_000 }),
        429,
        'rate_limit_error',
      );
      assert.match(refused.message, /Daily budget of \$1 used up; it renews at 00:00 UTC/);
      assert.equal(retryAfterOf(refused.headers), UNTIL_MIDNIGHT_S);
      assert.equal(rateLimitOf(refused.headers).remaining, Math.floor((budget - 2 * actual) / 10_000_000));
    }
    assert.equal(h.fake.requests.length, 2, 'the refused requests never reached the upstream');
    // A smaller max_tokens still fits what is left.
    h.fake.queue({ kind: 'message', usage: { input_tokens: 20, output_tokens: 10 } });
    await expectAnswer('messages', await send(h, 'messages', ALICE, { maxTokens: 10_000 }), false);
  });

  it('concurrent requests cannot overspend: each reserves before any is answered', async () => {
    // The admitted request waits upstream (and times out): its reservation stands meanwhile.
    h.fake.setScenario(() => ({ kind: 'stall' }));
    // Each reserves about $0.60 of carol's $1: exactly one fits.
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => send(h, 'messages', CAROL, { maxTokens: 60_000 })),
    );
    const statuses = answers.map((res) => res.status).sort();
    await Promise.all(answers.map((res) => res.text()));
    assert.deepEqual(statuses, [429, 429, 429, 429, 429, 504]);
    // Only the admitted request reached the upstream: its attempt and MAX_RETRIES (2) retries.
    assert.equal(h.fake.requests.length, 3);
  });

  it('a cancelled stream is settled from its partial cost', async () => {
    const budget = 1_000_000_000;
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 20 }, (_, i) => `w${i} `),
      deltaDelayMs: 150,
      usage: { input_tokens: 300, cache_read_input_tokens: 200, output_tokens: 900 },
    });
    const controller = new AbortController();
    const res = await send(h, 'messages', ERIN, {
      maxTokens: 90_000,
      stream: true,
      signal: controller.signal,
    });
    await readUntilThenAbort(res, 'w0', controller);
    await requestLogOf(h, `usd-${n}`);
    // message_start's usage: 300 × $2 + 200 × $0.20 + 1 × $10 per million tokens = 650 µ$.
    const partial = 650_000;
    h.fake.queue({ kind: 'message' });
    const next = await send(h, 'messages', ERIN, { maxTokens: 16 });
    const worst = worstNano(messagesBytes('claude-sonnet-5', 16, false), 16);
    assert.equal(rateLimitOf(next.headers).remaining, Math.floor((budget - partial - worst) / 10_000_000));
    await expectAnswer('messages', next, false);
  });

  it('a monthly budget: a request dearer than the whole budget fits an empty one; then 429 until the 1st', async () => {
    h.fake.queue({ kind: 'message', usage: { input_tokens: 5, output_tokens: 5 } });
    const first = await send(h, 'query', DAVE, { maxTokens: 100 });
    assert.equal(first.status, 200);
    await first.text();
    await requestLogOf(h, `usd-${n}`);
    const refused = await expectError('query', await send(h, 'query', DAVE), 429, 'rate_limit_error');
    assert.match(refused.message, /Monthly budget of \$0\.000001 used up/);
    assert.equal(retryAfterOf(refused.headers), UNTIL_FEBRUARY_S);
  });

  it('a model with no price: 400 naming it and MODEL_PRICES_FILE under a dollar budget, served without one', async () => {
    for (const route of ROUTES) {
      const refused = await expectError(
        route,
        await send(h, route, ALICE, { model: 'claude-unpriced-1' }),
        400,
        'invalid_request_error',
      );
      assert.match(refused.message, /"claude-unpriced-1" has no known price/);
      assert.match(refused.message, /MODEL_PRICES_FILE/);
    }
    assert.equal(h.fake.requests.length, 0);
    h.fake.queue({ kind: 'message' });
    await expectAnswer('messages', await send(h, 'messages', BOB, { model: 'claude-unpriced-1' }), false);
  });
});
