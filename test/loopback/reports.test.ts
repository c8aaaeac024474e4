/**
 * The usage and cost reports over HTTP: Anthropic's shapes and grouping, pagination, who may read
 * what, bad parameters in Anthropic's error shape, and an answer recorded end to end with its cost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { costOf } from '../../src/pricing/cost.ts';
import { HOUR_MS, MemoryUsageStore, emptyCounts, type UsageCounts } from '../../src/reports/usage-store.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { bearer } from '../helpers/routes.ts';
import { waitFor } from '../helpers/wait.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';
const BOSS = 'boss-key-0123456789abcdef';
const OPS = 'ops-key-0123456789abcdef';
const SLOW = 'slow-key-0123456789abcdef';
const DAY_MS = 24 * HOUR_MS;
const BASE = Math.floor(Date.now() / DAY_MS) * DAY_MS - 3 * DAY_MS;
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');
const USAGE = '/v1/organizations/usage_report/messages';
const COST = '/v1/organizations/cost_report';

interface Report {
  data: { starting_at: string; ending_at: string; results: Record<string, unknown>[] }[];
  has_more: boolean;
  next_page: string | null;
}

function counts(partial: Partial<UsageCounts>): UsageCounts {
  return { ...emptyCounts(), requests: 1, ...partial };
}

describe('usage and cost reports', () => {
  let h: Harness;
  let clock = BASE;
  const store = new MemoryUsageStore({ retentionHours: 35 * 24, now: () => clock });

  const get = async (path: string, key: string | undefined, query: string) => {
    const res = await fetch(`${h.url}${path}?${query}`, { headers: key === undefined ? {} : bearer(key) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  };
  const report = async (path: string, key: string, query: string): Promise<Report> => {
    const res = await get(path, key, query);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as unknown as Report;
  };
  const range = `starting_at=${iso(BASE)}&ending_at=${iso(BASE + 3 * DAY_MS)}`;

  before(async () => {
    clock = BASE + HOUR_MS + 60_000;
    store.record(
      'alice',
      'claude-sonnet-5',
      counts({
        uncachedInput: 100,
        cacheWrite5m: 10,
        cacheWrite1h: 20,
        cacheWriteUnsplit: 5,
        cacheRead: 7,
        output: 50,
        costPicoUsd: 1_234_567_890_123n,
        costInput: 1_000_000_000_000n,
        costCacheWrite5m: 100_000_000_000n,
        costCacheWrite1h: 100_000_000_000n,
        costCacheRead: 4_567_890_123n,
        costOutput: 30_000_000_000n,
      }),
    );
    clock = BASE + 2 * HOUR_MS;
    store.record(
      'bob',
      'claude-haiku-5',
      counts({ output: 5, costPicoUsd: 10_000_000_000n, costOutput: 10_000_000_000n }),
    );
    clock = BASE + DAY_MS + 3 * HOUR_MS;
    store.record(
      'alice',
      'claude-sonnet-5',
      counts({ output: 1, costPicoUsd: 150_000n, costOutput: 150_000n }),
    );
    store.record('bob', 'mystery-model', counts({ uncachedInput: 30, output: 10, unpricedTokens: 40 }));
    clock = Date.now();
    h = await startHarness(
      {
        SERVICE_API_KEYS_FILE: '',
        SERVICE_API_KEYS: `alice:${ALICE},bob:${BOB},slow:${SLOW}`,
        ADMIN_API_KEYS: `boss:${BOSS},ops:${OPS}`,
      },
      { usage: store },
    );
  });
  after(async () => {
    assert.equal(h.fake.requests.length, 1, 'a report called the upstream');
    await h.close();
  });

  it('the usage report, grouped by api_key_id and model, in the shape of Anthropic’s example', async () => {
    const body = await report(USAGE, BOSS, `${range}&group_by[]=api_key_id&group_by[]=model&limit=2`);
    assert.deepEqual(body, {
      data: [
        {
          starting_at: iso(BASE),
          ending_at: iso(BASE + DAY_MS),
          results: [
            {
              uncached_input_tokens: 100,
              cache_creation: { ephemeral_1h_input_tokens: 20, ephemeral_5m_input_tokens: 15 },
              cache_read_input_tokens: 7,
              output_tokens: 50,
              server_tool_use: { web_search_requests: 0 },
              api_key_id: 'alice',
              workspace_id: null,
              model: 'claude-sonnet-5',
              service_tier: null,
              context_window: null,
              request_count: 1,
            },
            {
              uncached_input_tokens: 0,
              cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 0 },
              cache_read_input_tokens: 0,
              output_tokens: 5,
              server_tool_use: { web_search_requests: 0 },
              api_key_id: 'bob',
              workspace_id: null,
              model: 'claude-haiku-5',
              service_tier: null,
              context_window: null,
              request_count: 1,
            },
          ],
        },
        {
          starting_at: iso(BASE + DAY_MS),
          ending_at: iso(BASE + 2 * DAY_MS),
          results: [
            {
              uncached_input_tokens: 0,
              cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 0 },
              cache_read_input_tokens: 0,
              output_tokens: 1,
              server_tool_use: { web_search_requests: 0 },
              api_key_id: 'alice',
              workspace_id: null,
              model: 'claude-sonnet-5',
              service_tier: null,
              context_window: null,
              request_count: 1,
            },
            {
              uncached_input_tokens: 30,
              cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 0 },
              cache_read_input_tokens: 0,
              output_tokens: 10,
              server_tool_use: { web_search_requests: 0 },
              api_key_id: 'bob',
              workspace_id: null,
              model: 'mystery-model',
              service_tier: null,
              context_window: null,
              request_count: 1,
            },
          ],
        },
      ],
      has_more: true,
      next_page: `page_${Buffer.from(iso(BASE + 2 * DAY_MS)).toString('base64')}`,
    });
  });

  it('without group_by, one total per bucket with the grouping fields null; models[] and api_key_ids[] filter', async () => {
    const body = await report(USAGE, OPS, `${range}&bucket_width=1d`);
    assert.equal(body.data.length, 3);
    assert.deepEqual(
      body.data.map((b) => b.results.map((r) => [r.api_key_id, r.model, r.output_tokens, r.request_count])),
      [[[null, null, 55, 2]], [[null, null, 11, 2]], []],
    );
    const filtered = await report(USAGE, OPS, `${range}&models[]=mystery-model&api_key_ids[]=bob`);
    assert.deepEqual(
      filtered.data.map((b) => b.results.map((r) => r.output_tokens)),
      [[], [10], []],
    );
  });

  it('the cost report: USD cents as decimal strings; by description one row per model and token type', async () => {
    const body = await report(COST, BOSS, `${range}&group_by[]=description`);
    const rows = (bucket: number) =>
      (body.data[bucket]?.results ?? []).map((r) => [
        r.description,
        r.token_type,
        r.amount,
        r.unpriced_tokens,
      ]);
    assert.deepEqual(body.data[0]?.results[0], {
      currency: 'USD',
      amount: '1',
      workspace_id: null,
      description: 'claude-haiku-5 Usage - Output Tokens',
      cost_type: 'tokens',
      context_window: null,
      model: 'claude-haiku-5',
      service_tier: null,
      token_type: 'output_tokens',
      api_key_id: null,
      unpriced_tokens: 0,
    });
    assert.deepEqual(rows(0), [
      ['claude-haiku-5 Usage - Output Tokens', 'output_tokens', '1', 0],
      ['claude-sonnet-5 Usage - Input Tokens', 'uncached_input_tokens', '100', 0],
      ['claude-sonnet-5 Usage - Output Tokens', 'output_tokens', '3', 0],
      ['claude-sonnet-5 Usage - Cache Read', 'cache_read_input_tokens', '0.4567890123', 0],
      ['claude-sonnet-5 Usage - Cache Write (5 min)', 'cache_creation.ephemeral_5m_input_tokens', '10', 0],
      ['claude-sonnet-5 Usage - Cache Write (1 h)', 'cache_creation.ephemeral_1h_input_tokens', '10', 0],
    ]);
    assert.deepEqual(rows(1), [
      ['claude-sonnet-5 Usage - Output Tokens', 'output_tokens', '0.000015', 0],
      ['mystery-model Usage - Unpriced Tokens', null, '0', 40],
    ]);
    const total = await report(COST, BOSS, range);
    assert.deepEqual(total.data[0]?.results, [
      {
        currency: 'USD',
        amount: '124.4567890123',
        workspace_id: null,
        description: null,
        cost_type: null,
        context_window: null,
        model: null,
        service_tier: null,
        token_type: null,
        api_key_id: null,
        unpriced_tokens: 0,
      },
    ]);
  });

  it('pages: 1h buckets two at a time, next_page until has_more is false, the same as one page', async () => {
    const query = `starting_at=${iso(BASE)}&ending_at=${iso(BASE + 5 * HOUR_MS)}&bucket_width=1h&group_by[]=api_key_id`;
    const whole = await report(USAGE, BOSS, `${query}&limit=168`);
    assert.equal(whole.data.length, 5);
    assert.equal(whole.has_more, false);
    assert.equal(whole.next_page, null);
    const pages: Report[] = [];
    let page: string | null = '';
    while (page !== null) {
      const next: Report = await report(USAGE, BOSS, `${query}&limit=2${page === '' ? '' : `&page=${page}`}`);
      pages.push(next);
      page = next.next_page;
      assert.equal(next.has_more, page !== null);
    }
    assert.deepEqual(
      pages.map((p) => p.data.length),
      [2, 2, 1],
    );
    assert.deepEqual(
      pages.flatMap((p) => p.data),
      whole.data,
    );
    assert.deepEqual(
      whole.data.map((b) => b.results.map((r) => r.api_key_id)),
      [[], ['alice'], ['bob'], [], []],
    );
  });

  it('a key that is not an admin reads only its own rows, whatever it asks for', async () => {
    for (const path of [USAGE, COST]) {
      for (const extra of ['', '&group_by[]=api_key_id', '&group_by[]=api_key_id&group_by[]=model']) {
        const body = await report(path, ALICE, `${range}${extra}`);
        const rows = body.data.flatMap((b) => b.results);
        assert.ok(rows.length > 0);
        for (const row of rows)
          assert.ok(row.api_key_id === null || row.api_key_id === 'alice', JSON.stringify(row));
      }
    }
    const usage = await report(USAGE, ALICE, `${range}&api_key_ids[]=bob`);
    assert.deepEqual(
      usage.data.flatMap((b) => b.results),
      [],
    );
    const totals = await report(USAGE, ALICE, range);
    assert.deepEqual(
      totals.data.map((b) => b.results.map((r) => r.output_tokens)),
      [[50], [1], []],
    );
    const bob = await report(COST, BOB, range);
    assert.deepEqual(
      bob.data.map((b) => b.results.map((r) => [r.amount, r.unpriced_tokens])),
      [[['1', 0]], [['0', 40]], []],
    );
    const nothing = await report(USAGE, SLOW, range);
    assert.deepEqual(
      nothing.data.flatMap((b) => b.results),
      [],
    );
  });

  it('both routes are in the OpenAPI document, with their query parameters', async () => {
    const spec = (await (await fetch(`${h.url}/openapi.json`)).json()) as {
      paths: Record<string, { get?: { parameters?: { name: string }[] } }>;
    };
    for (const path of [USAGE, COST]) {
      const names = (spec.paths[path]?.get?.parameters ?? []).map((p) => p.name);
      for (const name of ['starting_at', 'ending_at', 'bucket_width', 'group_by[]', 'limit', 'page'])
        assert.ok(names.includes(name), `${path} documents ${name}`);
    }
  });

  it('bad parameters: 400 in Anthropic’s error shape naming the parameter; no key: 401', async () => {
    const cases: [string, string, RegExp][] = [
      [USAGE, '', /starting_at is required/],
      [USAGE, 'starting_at=yesterday', /starting_at must be an RFC 3339 timestamp/],
      [USAGE, `${range}&bucket_width=1m`, /bucket_width 1m is not available: usage is kept per hour/],
      [USAGE, `${range}&bucket_width=2h`, /bucket_width must be "1d" or "1h"/],
      [COST, `${range}&bucket_width=1h`, /bucket_width must be "1d"/],
      [USAGE, `${range}&limit=0`, /limit must be an integer from 1 to 31 for bucket_width 1d/],
      [USAGE, `${range}&bucket_width=1h&limit=169`, /limit must be an integer from 1 to 168/],
      [USAGE, `${range}&group_by[]=workspace_id`, /group_by must be one or more of "api_key_id", "model"/],
      [USAGE, `${range}&group_by[]=description`, /group_by must be one or more of/],
      [USAGE, `${range}&page=page_bm90IGEgZGF0ZQ==`, /page must be the next_page of an earlier answer/],
      [USAGE, `${range}&page=page_${Buffer.from(iso(BASE - DAY_MS)).toString('base64')}`, /page must be/],
      [USAGE, `starting_at=${iso(BASE)}&ending_at=${iso(BASE - 1)}`, /ending_at must be after starting_at/],
      [USAGE, `${range}&workspace_ids[]=x`, /workspace_ids\[\] is not a query parameter of this report/],
      [COST, `${range}&models[]=x`, /models\[\] is not a query parameter/],
      [USAGE, `${range}&limit=1&limit=2`, /"limit" must be a string/],
    ];
    for (const [path, query, message] of cases) {
      const res = await get(path, ALICE, query);
      assert.equal(res.status, 400, `${path}?${query}`);
      const error = res.body.error as { type: string; message: string };
      assert.equal(res.body.type, 'error');
      assert.equal(error.type, 'invalid_request_error');
      assert.match(error.message, message);
    }
    const anonymous = await get(USAGE, undefined, range);
    assert.equal(anonymous.status, 401);
    assert.deepEqual(Object.keys(anonymous.body).sort(), ['error', 'request_id', 'type']);
  });

  it('an answer is recorded with its tokens and its cost, and read back at once', async () => {
    const usage = {
      input_tokens: 1_000,
      output_tokens: 3,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 40,
    };
    h.fake.queue({
      kind: 'message',
      deltas: ['a', 'b', 'c'],
      usage: { ...usage, cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 200 } },
    });
    const res = await fetch(`${h.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...bearer(SLOW) },
      body: JSON.stringify({
        model: 'claude-sonnet-5',
        max_tokens: 16,
        messages: [{ role: 'user', content: 'Hi' }],
      }),
    });
    assert.equal(res.status, 200);
    await res.text();
    const today = `starting_at=${iso(Date.now())}&group_by[]=model`;
    let rows: Record<string, unknown>[] = [];
    await waitFor(async () => {
      rows = (await report(USAGE, SLOW, today)).data.flatMap((b) => b.results);
      return rows.length === 1;
    }, 'the answer in the usage report');
    assert.deepEqual(
      [
        rows[0]?.uncached_input_tokens,
        rows[0]?.cache_creation,
        rows[0]?.cache_read_input_tokens,
        rows[0]?.output_tokens,
      ],
      [1_000, { ephemeral_1h_input_tokens: 200, ephemeral_5m_input_tokens: 100 }, 40, 3],
    );
    const expected = costOf(h.config.prices, 'claude-sonnet-5', {
      ...usage,
      cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 200 },
    });
    assert.ok(typeof expected === 'bigint' && expected > 0n);
    const cost = await report(COST, SLOW, today);
    const amount = cost.data.flatMap((b) => b.results)[0]?.amount;
    assert.equal(amount, `${Number(expected) / 1e10}`);
    const kinds = await report(COST, SLOW, `${today}&group_by[]=description`);
    const byType = kinds.data.flatMap((b) => b.results);
    assert.deepEqual(
      byType.map((r) => r.token_type),
      [
        'uncached_input_tokens',
        'output_tokens',
        'cache_read_input_tokens',
        'cache_creation.ephemeral_5m_input_tokens',
        'cache_creation.ephemeral_1h_input_tokens',
      ],
    );
    const picos = byType.map((r) => {
      const [whole = '0', fraction = ''] = (r.amount as string).split('.');
      return BigInt(whole) * 10_000_000_000n + BigInt(fraction.padEnd(10, '0'));
    });
    assert.equal(
      picos.reduce((a, b) => a + b, 0n),
      expected,
      'the rows by token type add up to the answer’s cost',
    );
  });
});

describe('reports without client keys, and the rpm limit', () => {
  let h: Harness;
  const store = new MemoryUsageStore({ retentionHours: 24 });
  before(async () => {
    store.record('anonymous', 'claude-sonnet-5', { ...emptyCounts(), requests: 1, output: 9 });
    h = await startHarness({ RATE_LIMIT_RPM: '2' }, { usage: store });
  });
  after(() => h.close());

  it('the one anonymous client reads its usage; a report counts against rpm', async () => {
    const query = `starting_at=${iso(Date.now())}&group_by[]=api_key_id`;
    const first = await fetch(`${h.url}${USAGE}?${query}`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('ratelimit-limit'), '2');
    const body = (await first.json()) as Report;
    assert.deepEqual(
      body.data.flatMap((b) => b.results.map((r) => [r.api_key_id, r.output_tokens])),
      [['anonymous', 9]],
    );
    assert.equal((await fetch(`${h.url}${COST}?${query}`)).status, 200);
    const third = await fetch(`${h.url}${USAGE}?${query}`);
    assert.equal(third.status, 429);
    assert.ok(third.headers.get('retry-after'));
    assert.equal(((await third.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
    assert.equal(h.fake.requests.length, 0);
  });
});
