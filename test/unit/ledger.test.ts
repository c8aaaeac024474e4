import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config-error.ts';
import type { RequestFinished } from '../../src/http/request-record.ts';
import { RowBuffer } from '../../src/ledger/buffer.ts';
import { picoToUsd, rowOf } from '../../src/ledger/row.ts';
import { parseLedgerSettings, redactPassword, redactUrl } from '../../src/ledger/settings.ts';

const FINISHED: RequestFinished = {
  requestId: 'r1',
  route: '/v1/messages',
  key: 'alice',
  modelRequested: 'claude-a',
  model: 'claude-b',
  status: 200,
  outcome: 'ok',
  errorType: undefined,
  usage: {
    input_tokens: 10,
    output_tokens: 20,
    cache_creation_input_tokens: 30,
    cache_read_input_tokens: 40,
  },
  stopReason: 'end_turn',
  costPicoUsd: 1_500_000_000_000n,
  answerMode: 'plain',
  attempts: 2,
  fallbacks: 1,
  upstreamStatus: 200,
  streamed: true,
  startedAt: 0,
  ttfbMs: 12.3456789,
  durationMs: 250.5,
  addedLatencyMs: 1,
};

describe('ledger rows', () => {
  it('turns pico-dollars into exact decimal USD', () => {
    assert.equal(picoToUsd(0n), '0.000000000000');
    assert.equal(picoToUsd(1n), '0.000000000001');
    assert.equal(picoToUsd(1_234_567n), '0.000001234567');
    assert.equal(picoToUsd(1_500_000_000_000n), '1.500000000000');
    assert.equal(picoToUsd(123_456_789_012_345_678_901n), '123456789.012345678901');
    assert.equal(picoToUsd(-5n), '-0.000000000005');
  });

  it('holds the numbers of a finished request', () => {
    const row = rowOf(FINISHED, Date.UTC(2026, 0, 1, 0, 0, 1));
    assert.ok(row);
    assert.equal(row.startedAt, '2026-01-01T00:00:00.750Z');
    assert.equal(row.keyName, 'alice');
    assert.equal(row.modelRequested, 'claude-a');
    assert.equal(row.model, 'claude-b');
    assert.deepEqual(
      [row.inputTokens, row.outputTokens, row.cacheWriteTokens, row.cacheReadTokens],
      [10, 20, 30, 40],
    );
    assert.equal(row.costUsd, '1.500000000000');
    assert.equal(row.ttfbMs, 12.346);
    assert.deepEqual([row.attempts, row.fallbacks, row.upstreamStatus], [2, 1, 200]);
    assert.match(row.id, /^[0-9a-f-]{36}$/);
    assert.ok(row.bytes > 400);
  });

  it('leaves unknowns null: no usage, no price, no first byte', () => {
    const row = rowOf(
      { ...FINISHED, usage: undefined, costPicoUsd: null, ttfbMs: undefined, key: undefined },
      0,
    );
    assert.ok(row);
    assert.deepEqual(
      [row.inputTokens, row.outputTokens, row.costUsd, row.ttfbMs, row.keyName],
      [null, null, null, null, null],
    );
    assert.equal(rowOf({ ...FINISHED, costPicoUsd: undefined }, 0)?.costUsd, null);
  });

  it('has no row for a request that never reached the upstream, or that is not an answer route', () => {
    assert.equal(rowOf({ ...FINISHED, attempts: 0, status: 429 }, 0), undefined);
    assert.equal(rowOf({ ...FINISHED, route: '/v1/models' }, 0), undefined);
    assert.ok(rowOf({ ...FINISHED, route: '/v1/messages/count_tokens' }, 0));
  });
});

describe('the ledger buffer', () => {
  const row = (n: number, bytes = 10) => ({ n, bytes });

  it('drops the oldest rows past its row bound, and says how many', () => {
    const drops: number[] = [];
    const buffer = new RowBuffer<{ n: number; bytes: number }>(3, 1_000_000, (c) => drops.push(c));
    for (const n of [1, 2, 3, 4, 5]) buffer.push(row(n));
    assert.deepEqual(drops, [1, 1]);
    assert.deepEqual(
      buffer.take(10).map((r) => r.n),
      [3, 4, 5],
    );
  });

  it('drops the oldest rows past its byte bound', () => {
    const drops: number[] = [];
    const buffer = new RowBuffer<{ n: number; bytes: number }>(100, 25, (c) => drops.push(c));
    buffer.push(row(1));
    buffer.push(row(2));
    buffer.push(row(3, 20));
    assert.deepEqual(drops, [2]);
    assert.equal(buffer.size, 1);
    assert.equal(buffer.bytes, 20);
  });

  it('puts a failed batch back in front, where its rows are the first dropped', () => {
    const drops: number[] = [];
    const buffer = new RowBuffer<{ n: number; bytes: number }>(3, 1_000_000, (c) => drops.push(c));
    for (const n of [1, 2]) buffer.push(row(n));
    const batch = buffer.take(10);
    for (const n of [3, 4, 5]) buffer.push(row(n));
    assert.deepEqual(drops, [], 'the batch being written is held beside the bound');
    assert.equal(buffer.size, 5);
    buffer.putBack(batch);
    assert.deepEqual(drops, [2]);
    assert.deepEqual(
      buffer.take(10).map((r) => r.n),
      [3, 4, 5],
    );
    buffer.written();
    assert.equal(buffer.size, 0);
    assert.equal(buffer.bytes, 0);
  });

  it('keeps order across many takes', () => {
    const buffer = new RowBuffer<{ n: number; bytes: number }>(10_000, 1_000_000, () => undefined);
    for (let n = 0; n < 5000; n++) buffer.push(row(n, 1));
    const seen: number[] = [];
    while (buffer.waiting > 0) {
      seen.push(...buffer.take(700).map((r) => r.n));
      buffer.written();
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 5000 }, (_, n) => n),
    );
  });
});

describe('ledger settings', () => {
  it('is off without DATABASE_URL', () => {
    assert.equal(parseLedgerSettings({}), null);
    assert.equal(parseLedgerSettings({ DATABASE_URL: ' ' }), null);
  });

  it('reads the bounds and times', () => {
    assert.deepEqual(
      parseLedgerSettings({
        DATABASE_URL: 'postgres://u@h/db',
        LEDGER_BUFFER_ROWS: '10',
        LEDGER_BUFFER_BYTES: '2048',
        LEDGER_FLUSH_INTERVAL: '0.5',
        LEDGER_DRAIN_TIMEOUT: '2',
      }),
      {
        databaseUrl: 'postgres://u@h/db',
        bufferRows: 10,
        bufferBytes: 2048,
        flushIntervalMs: 500,
        drainTimeoutMs: 2000,
      },
    );
  });

  it('refuses a bad URL without echoing it (it may hold a password)', () => {
    for (const url of ['mysql://u:s3cret-pw@h/db', 'not a url s3cret-pw']) {
      assert.throws(
        () => parseLedgerSettings({ DATABASE_URL: url }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.startsWith('DATABASE_URL must be') &&
          !error.message.includes('s3cret-pw'),
      );
    }
    assert.throws(
      () => parseLedgerSettings({ DATABASE_URL: 'postgres://h/db', LEDGER_BUFFER_ROWS: '0' }),
      /LEDGER_BUFFER_ROWS must be an integer >= 1, got "0"/,
    );
    assert.throws(
      () => parseLedgerSettings({ DATABASE_URL: 'postgres://h/db', LEDGER_DRAIN_TIMEOUT: 'soon' }),
      /LEDGER_DRAIN_TIMEOUT must be a number of seconds/,
    );
  });

  it('redacts the password in URLs and in error texts', () => {
    assert.equal(redactUrl('postgres://u:p%40ss@h:5432/db'), 'postgres://u:***@h:5432/db');
    assert.equal(redactUrl('postgres://u@h/db'), 'postgres://u@h/db');
    assert.equal(
      redactPassword('password authentication failed: p@ss', 'postgres://u:p%40ss@h/db'),
      'password authentication failed: ***',
    );
  });
});
