/**
 * The request ledger against the real PostgreSQL: each test in a schema of its own, dropped after it.
 * In-process services (the harness) with a Ledger subscribed, and the process itself for SIGTERM.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, afterEach, before, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { RequestFinished } from '../../src/http/request-record.ts';
import { Ledger } from '../../src/ledger/ledger.ts';
import { migrate, MIGRATIONS } from '../../src/ledger/migrations.ts';
import { picoToUsd } from '../../src/ledger/row.ts';
import { parseLedgerSettings } from '../../src/ledger/settings.ts';
import { startFakeUpstream, type FakeUpstream } from '../../src/mock/fake-upstream.ts';
import { clockInsideMinute } from '../helpers/clock.ts';
import { startHarness, requestLogOf, type Harness } from '../helpers/harness.ts';
import {
  atPort,
  closedPort,
  createTestSchema,
  postgresReachable,
  startTcpProxy,
  type TcpProxy,
  type TestSchema,
} from '../helpers/postgres.ts';
import { describeIf } from '../helpers/redis.ts';
import { ask, bearer, readUntilThenAbort } from '../helpers/routes.ts';
import { startService } from '../helpers/service-process.ts';
import { waitFor } from '../helpers/wait.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef00';

interface LedgerRowOut {
  request_id: string;
  key_name: string | null;
  route: string;
  model_requested: string | null;
  model: string | null;
  status: number;
  outcome: string;
  error_type: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_write_tokens: number | null;
  cache_read_tokens: number | null;
  cost: string | null;
  ttfb_ms: number | null;
  duration_ms: number;
  answer_mode: string;
  attempts: number;
  fallbacks: number;
  upstream_status: number | null;
  started_at: Date;
}

const SELECT_ROWS = `SELECT *, cost_usd::text AS cost FROM llmc_ledger ORDER BY started_at, request_id`;

/** Everything needed to run a harness with a ledger in its own schema. */
interface Rig {
  schema: TestSchema;
  ledger: Ledger;
  registry: Registry;
  logs: string[];
  /** Each finished request, by request id (to compare what the ledger wrote with what the record held). */
  finished: Map<string, RequestFinished>;
  h: Harness;
  proxy?: TcpProxy;
}

const rigs: Rig[] = [];

function sinkLogger(logs: string[]) {
  return pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logs.push(chunk.toString('utf8'));
        callback();
      },
    }),
  );
}

async function rig(
  options: { env?: Record<string, string>; viaProxy?: boolean; proxyDown?: boolean; now?: () => number } = {},
): Promise<Rig> {
  const schema = await createTestSchema();
  let url = schema.url;
  let proxy: TcpProxy | undefined;
  if (options.viaProxy === true) {
    proxy = await startTcpProxy(5432);
    if (options.proxyDown === true) proxy.cut();
    url = atPort(schema.url, proxy.port);
  }
  const settings = parseLedgerSettings({ DATABASE_URL: url, LEDGER_FLUSH_INTERVAL: '0.02', ...options.env });
  assert.ok(settings);
  const logs: string[] = [];
  const registry = new Registry();
  const ledger = new Ledger(settings, sinkLogger(logs), registry);
  await ledger.start(2_000);
  const finished = new Map<string, RequestFinished>();
  const h = await startHarness(
    { MAX_RETRIES: '0', ...options.env },
    {
      subscribers: [
        ledger.subscriber,
        {
          finished: (f) => {
            finished.set(f.requestId, f);
          },
        },
      ],
      ...(options.now ? { now: options.now } : {}),
    },
  );
  const r: Rig = { schema, ledger, registry, logs, finished, h, ...(proxy ? { proxy } : {}) };
  rigs.push(r);
  return r;
}

async function metric(registry: Registry, name: string): Promise<number> {
  const value = (await registry.getSingleMetric(name)?.get())?.values[0]?.value;
  return value ?? 0;
}

async function rows(r: Rig): Promise<LedgerRowOut[]> {
  return r.schema.query<LedgerRowOut & pg.QueryResultRow>(SELECT_ROWS);
}

async function rowCount(r: Rig): Promise<number> {
  const result = await r.schema
    .query<{ n: number }>('SELECT count(*)::int AS n FROM llmc_ledger')
    .catch(() => [{ n: -1 }]);
  return result[0]?.n ?? -1;
}

async function waitForRows(r: Rig, n: number, ms = 20_000): Promise<void> {
  await waitFor(async () => (await rowCount(r)) >= n && r.ledger.buffered === 0, `${n} ledger rows`, ms);
  assert.equal(await rowCount(r), n);
}

/** A streamed /llm/query answer read to its end, named `id`. */
async function completedQuery(h: Harness, id: string, key = ALICE): Promise<void> {
  const res = await ask(h.url, 'query', { headers: { ...bearer(key), 'x-request-id': id } });
  assert.equal(res.status, 200);
  await res.text();
  await requestLogOf(h, id);
}

/** POST a small streamed query on a connection of its own; resolves with the whole answer read. */
function postOnNewConnection(url: string, id: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'x-request-id': id } },
      (res) => {
        assert.equal(res.statusCode, 200);
        res.resume();
        res.on('end', resolve);
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ prompt: 'Hi', max_tokens: 16 }));
  });
}

const available = await postgresReachable();

describeIf(available, 'PostgreSQL does not answer on 127.0.0.1:5432', 'the request ledger', () => {
  afterEach(async () => {
    for (const r of rigs.splice(0)) {
      r.h.app.server.closeAllConnections();
      await r.h.close();
      r.proxy?.restore();
      await r.ledger.close();
      await r.proxy?.close();
      await r.schema.drop();
    }
  });

  it('migrates once, whether started twice in a row or by several replicas at once', async () => {
    const schema = await createTestSchema();
    const pools = Array.from({ length: 4 }, () => {
      const pool = new pg.Pool({ connectionString: schema.url, max: 1 });
      pool.on('error', () => undefined);
      return pool;
    });
    try {
      const ran = await Promise.all(pools.map((pool) => migrate(pool)));
      assert.deepEqual(
        ran.flat().sort(),
        MIGRATIONS.map((m) => m.version),
        'each migration ran exactly once among the concurrent starts',
      );
      assert.deepEqual(await migrate(pools[0] as pg.Pool), [], 'a second start finds nothing to do');
      const versions = await schema.query<{ version: number }>(
        'SELECT version FROM llmc_schema_migrations ORDER BY version',
      );
      assert.deepEqual(
        versions.map((v) => v.version),
        MIGRATIONS.map((m) => m.version),
      );
      assert.deepEqual(await schema.query('SELECT * FROM llmc_ledger'), []);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
      await schema.drop();
    }
  });

  it('writes one row per answer of a mixed run, with its numbers; refused requests have none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmc-ledger-'));
    const keysFile = join(dir, 'keys');
    writeFileSync(keysFile, `alice:${ALICE}\nbob:${BOB} rpm=1\n`);
    try {
      const r = await rig({ env: { SERVICE_API_KEYS_FILE: keysFile }, now: clockInsideMinute() });
      const { h } = r;
      const usage = {
        input_tokens: 11,
        output_tokens: 7,
        cache_creation_input_tokens: 5,
        cache_read_input_tokens: 3,
      };
      // 1. A streamed /llm/query answer, completed.
      h.fake.queue({ kind: 'message', deltas: ['a', 'b'], usage });
      await completedQuery(h, 'mixed-query');
      // 2. /v1/messages, whole.
      h.fake.queue({ kind: 'message', deltas: ['c'], usage: { ...usage, output_tokens: 2 } });
      const messages = await ask(h.url, 'messages', {
        stream: false,
        headers: { ...bearer(ALICE), 'x-request-id': 'mixed-messages' },
      });
      assert.equal(messages.status, 200);
      await messages.text();
      // 3. /v1/chat/completions, streamed, for bob (his one request this minute).
      h.fake.queue({ kind: 'message', deltas: ['d'], usage: { ...usage, output_tokens: 1 } });
      const chat = await ask(h.url, 'chat', { headers: { ...bearer(BOB), 'x-request-id': 'mixed-chat' } });
      assert.equal(chat.status, 200);
      await chat.text();
      // 4. The client leaves mid-stream.
      h.fake.queue({
        kind: 'message',
        deltas: ['e', 'f', 'g'],
        usage: { input_tokens: 13 },
        fault: { type: 'stall', afterDeltas: 1 },
      });
      const controller = new AbortController();
      const gone = await ask(h.url, 'query', {
        headers: { ...bearer(ALICE), 'x-request-id': 'mixed-gone' },
        signal: controller.signal,
      });
      await readUntilThenAbort(gone, 'event: delta', controller);
      // 5. The upstream fails.
      h.fake.queue({ kind: 'error', status: 500, errorType: 'api_error' });
      const failed = await ask(h.url, 'query', {
        stream: false,
        headers: { ...bearer(ALICE), 'x-request-id': 'mixed-failed' },
      });
      assert.ok(failed.status >= 500, String(failed.status));
      await failed.text();
      // 6. Refused by a limit (bob's rpm), 7. refused as invalid, 8. not an answer route: no rows.
      const refused = await ask(h.url, 'chat', { headers: { ...bearer(BOB), 'x-request-id': 'mixed-429' } });
      assert.equal(refused.status, 429);
      await refused.text();
      const invalid = await fetch(`${h.url}/llm/query`, {
        method: 'POST',
        headers: { ...bearer(ALICE), 'content-type': 'application/json', 'x-request-id': 'mixed-400' },
        body: JSON.stringify({ prompt: 42 }),
      });
      assert.equal(invalid.status, 400);
      await invalid.text();
      const models = await fetch(`${h.url}/v1/models`, {
        headers: { ...bearer(ALICE), 'x-request-id': 'mixed-models' },
      });
      assert.equal(models.status, 200);
      await models.text();

      for (const id of [
        'mixed-query',
        'mixed-messages',
        'mixed-chat',
        'mixed-gone',
        'mixed-failed',
        'mixed-429',
        'mixed-400',
        'mixed-models',
      ])
        await requestLogOf(h, id);
      await waitForRows(r, 5);
      const byId = new Map((await rows(r)).map((row) => [row.request_id, row]));
      assert.deepEqual([...byId.keys()].sort(), [
        'mixed-chat',
        'mixed-failed',
        'mixed-gone',
        'mixed-messages',
        'mixed-query',
      ]);
      const expect = (id: string, fields: Partial<LedgerRowOut>): void => {
        const row = byId.get(id);
        assert.ok(row, id);
        const f = r.finished.get(id);
        assert.ok(f, `${id} finished`);
        for (const [name, value] of Object.entries(fields))
          assert.deepEqual(row[name as keyof LedgerRowOut], value, `${id}: ${name}`);
        // The cost is the record's, exactly (null while unknown).
        const pico = f.costPicoUsd;
        assert.equal(row.cost, pico === null || pico === undefined ? null : picoToUsd(pico), `${id}: cost`);
        assert.equal(row.answer_mode, f.answerMode);
        assert.ok(row.duration_ms > 0 && Math.abs(row.duration_ms - f.durationMs) < 0.01, `${id}: duration`);
        if (f.ttfbMs === undefined) assert.equal(row.ttfb_ms, null);
        else assert.ok(Math.abs((row.ttfb_ms ?? -1) - f.ttfbMs) < 0.01, `${id}: ttfb`);
      };
      expect('mixed-query', {
        key_name: 'alice',
        route: '/llm/query',
        model_requested: 'claude-sonnet-5',
        model: 'claude-sonnet-5',
        status: 200,
        outcome: 'ok',
        input_tokens: 11,
        output_tokens: 7,
        cache_write_tokens: 5,
        cache_read_tokens: 3,
        attempts: 1,
        fallbacks: 0,
        upstream_status: 200,
      });
      expect('mixed-messages', {
        key_name: 'alice',
        route: '/v1/messages',
        status: 200,
        outcome: 'ok',
        input_tokens: 11,
        output_tokens: 2,
        cache_write_tokens: 5,
        cache_read_tokens: 3,
      });
      expect('mixed-chat', {
        key_name: 'bob',
        route: '/v1/chat/completions',
        status: 200,
        outcome: 'ok',
        input_tokens: 11,
        output_tokens: 1,
      });
      expect('mixed-gone', {
        key_name: 'alice',
        status: 200,
        outcome: 'client_closed',
        input_tokens: 13,
        output_tokens: 1,
        cache_write_tokens: 0,
        cache_read_tokens: 0,
      });
      expect('mixed-failed', {
        key_name: 'alice',
        status: failed.status,
        outcome: 'upstream_error',
        input_tokens: null,
        output_tokens: null,
        cost: null,
        ttfb_ms: null,
        attempts: 1,
        upstream_status: 500,
      });
      assert.equal(await metric(r.registry, 'llmc_ledger_rows_written_total'), 5);
      assert.equal(await metric(r.registry, 'llmc_ledger_dropped_total'), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stores a cost exactly as the decimal of its pico-dollars', async () => {
    const r = await rig();
    const base = {
      route: '/v1/messages',
      key: 'alice',
      modelRequested: 'claude-x',
      model: 'claude-x',
      status: 200,
      outcome: 'ok',
      errorType: undefined,
      usage: {
        input_tokens: 1,
        output_tokens: 2,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
      stopReason: 'end_turn',
      answerMode: 'plain',
      attempts: 1,
      fallbacks: 0,
      upstreamStatus: 200,
      streamed: false,
      startedAt: 0,
      ttfbMs: 1,
      durationMs: 2,
      addedLatencyMs: 0,
    } as const;
    const costs: [string, bigint | null][] = [
      ['cost-big', 123_456_789_012_345_678n],
      ['cost-tiny', 1n],
      ['cost-third', 333_333_333_333n],
      ['cost-null', null],
    ];
    for (const [requestId, costPicoUsd] of costs)
      r.ledger.subscriber.finished?.({ ...base, requestId, costPicoUsd }, undefined as never);
    await waitForRows(r, costs.length);
    const stored = await r.schema.query<{ request_id: string; cost: string | null }>(
      'SELECT request_id, cost_usd::text AS cost FROM llmc_ledger ORDER BY request_id',
    );
    assert.deepEqual(stored, [
      { request_id: 'cost-big', cost: '123456.789012345678' },
      { request_id: 'cost-null', cost: null },
      { request_id: 'cost-third', cost: '0.333333333333' },
      { request_id: 'cost-tiny', cost: '0.000000000001' },
    ]);
  });

  it('loses nothing while PostgreSQL is unreachable, and writes it all once it is back', async () => {
    const r = await rig({ viaProxy: true });
    const proxy = r.proxy as TcpProxy;
    for (const i of [1, 2, 3]) await completedQuery(r.h, `before-${i}`);
    await waitForRows(r, 3);

    proxy.cut();
    for (const i of [1, 2, 3, 4]) await completedQuery(r.h, `during-${i}`);
    await waitFor(
      async () => (await metric(r.registry, 'llmc_ledger_write_errors_total')) >= 2,
      'writes to fail during the outage',
    );
    assert.equal(r.ledger.buffered, 4, 'the rows wait in the buffer');
    assert.equal(await metric(r.registry, 'llmc_ledger_buffered_rows'), 4);
    const ready = await fetch(`${r.h.url}/readyz`);
    assert.equal(ready.status, 200, '/readyz stays ready while PostgreSQL is down');
    await ready.text();
    assert.ok(
      r.logs.some((l) => l.includes('ledger: cannot write to PostgreSQL')),
      'the outage is warned about',
    );

    proxy.restore();
    await waitForRows(r, 7, 60_000);
    const ids = (await rows(r)).map((row) => row.request_id).sort();
    assert.deepEqual(ids, [
      'before-1',
      'before-2',
      'before-3',
      'during-1',
      'during-2',
      'during-3',
      'during-4',
    ]);
    assert.equal(await metric(r.registry, 'llmc_ledger_dropped_total'), 0);
    assert.equal(await metric(r.registry, 'llmc_ledger_rows_written_total'), 7);
  });

  it('drops the oldest rows when the buffer is full, and counts them', async () => {
    const r = await rig({ viaProxy: true, proxyDown: true, env: { LEDGER_BUFFER_ROWS: '3' } });
    for (const i of [1, 2, 3, 4, 5]) await completedQuery(r.h, `full-${i}`);
    assert.equal(await metric(r.registry, 'llmc_ledger_dropped_total'), 2);
    assert.equal(r.ledger.buffered, 3);
    assert.ok(
      r.logs.some((l) => l.includes('ledger: buffer full')),
      'the drop is warned about',
    );
    r.proxy?.restore();
    await waitForRows(r, 3, 60_000);
    assert.deepEqual((await rows(r)).map((row) => row.request_id).sort(), ['full-3', 'full-4', 'full-5']);
  });
});

describeIf(available, 'PostgreSQL does not answer on 127.0.0.1:5432', 'the ledger on SIGTERM', () => {
  let fake: FakeUpstream;
  let schema: TestSchema;
  before(async () => {
    fake = await startFakeUpstream();
  });
  after(async () => {
    await fake.close();
  });
  afterEach(async () => {
    await schema.drop();
  });

  it('writes the buffer before the process exits', async () => {
    schema = await createTestSchema();
    const service = await startService({
      ANTHROPIC_API_KEY: 'sk-ant-test-ledger',
      ANTHROPIC_BASE_URL: fake.url,
      DATABASE_URL: schema.url,
      // Nothing is written by the timer: only the drain can write these rows.
      LEDGER_FLUSH_INTERVAL: '3600',
    });
    for (const i of [1, 2, 3]) {
      const res = await ask(service.url, 'query', { headers: { 'x-request-id': `term-${i}` } });
      assert.equal(res.status, 200);
      await res.text();
    }
    await waitFor(
      () => service.logLines().filter((l) => l.msg === 'request').length === 3,
      'the three requests to finish',
    );
    assert.deepEqual(await schema.query('SELECT * FROM llmc_ledger'), [], 'nothing written before SIGTERM');
    const exit = await service.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const ids = await schema.query<{ request_id: string }>(
      'SELECT request_id FROM llmc_ledger ORDER BY request_id',
    );
    assert.deepEqual(
      ids.map((row) => row.request_id),
      ['term-1', 'term-2', 'term-3'],
    );
    assert.ok(
      service.logLines().some((l) => l.msg === 'ledger: buffer written before exit' && l.written === 3),
    );
  });

  it('with --workers, every worker writes its buffer before the cluster exits', async () => {
    schema = await createTestSchema();
    const service = await startService(
      {
        ANTHROPIC_API_KEY: 'sk-ant-test-ledger',
        ANTHROPIC_BASE_URL: fake.url,
        DATABASE_URL: schema.url,
        LEDGER_FLUSH_INTERVAL: '3600',
      },
      ['--workers', '2'],
    );
    const ids = Array.from({ length: 8 }, (_, i) => `cluster-${i}`);
    // Each on a connection of its own, so that both workers serve some.
    await Promise.all(ids.map((id) => postOnNewConnection(`${service.url}/llm/query`, id)));
    await waitFor(
      () => service.logLines().filter((l) => l.msg === 'request').length === ids.length,
      'the requests to finish',
    );
    const exit = await service.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const stored = await schema.query<{ request_id: string }>(
      'SELECT request_id FROM llmc_ledger ORDER BY request_id',
    );
    assert.deepEqual(
      stored.map((row) => row.request_id),
      ids.sort(),
    );
  });

  it('with PostgreSQL unreachable, exits after the drain timeout and says how many rows were lost, never the password', async () => {
    schema = await createTestSchema();
    const port = await closedPort();
    const url = new URL(atPort(schema.url, port));
    url.password = 'hunter2-ledger-secret';
    const service = await startService({
      ANTHROPIC_API_KEY: 'sk-ant-test-ledger',
      ANTHROPIC_BASE_URL: fake.url,
      DATABASE_URL: url.toString(),
      LEDGER_DRAIN_TIMEOUT: '0.3',
    });
    for (const i of [1, 2]) {
      const res = await ask(service.url, 'query', { headers: { 'x-request-id': `lost-${i}` } });
      assert.equal(res.status, 200);
      await res.text();
    }
    await waitFor(
      () => service.logLines().filter((l) => l.msg === 'request').length === 2,
      'the two requests to finish',
    );
    const exit = await service.stop();
    assert.equal(exit.code, 0, exit.stderr);
    const lost = service
      .logLines()
      .find((l) => String(l.msg).startsWith('ledger: rows could not be written'));
    assert.equal(lost?.unwritten, 2, exit.stdout);
    assert.ok(
      service.logLines().some((l) => String(l.msg).startsWith('ledger: cannot write')),
      'the failed writes are warned about',
    );
    assert.ok(!`${exit.stdout}${exit.stderr}`.includes('hunter2-ledger-secret'), 'the password never shows');
  });
});
