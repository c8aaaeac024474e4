import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MessageStreamReader } from '../../src/anthropic/message-stream.ts';
import { costOf, decimalUnits, usdString, worstCaseCost } from '../../src/pricing/cost.ts';
import { loadPriceTable, parsePrices, shippedPrices } from '../../src/pricing/price-table.ts';
import { SseDecoder } from '../../src/sse/decoder.ts';

const table = shippedPrices().table;

/** Writes `content` to a temporary file, calls `body` with its path, removes it. */
function withFile<T>(content: string, body: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'llmc-prices-'));
  try {
    const path = join(dir, 'prices.json');
    writeFileSync(path, content);
    return body(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('costOf', () => {
  // claude-sonnet-5: $2 input, $2.50 5m writes, $4 1h writes, $0.20 cache hits, $10 output per MTok.
  const usage = {
    input_tokens: 1000,
    output_tokens: 500,
    cache_creation_input_tokens: 3000,
    cache_read_input_tokens: 10000,
  };

  it('prices each kind of token, the cache writes split 5m/1h when the usage gives the split', () => {
    // 1000×2 + 1000×2.5 + 2000×4 + 10000×0.2 + 500×10 = 19500 µ$ = $0.0195
    const split = {
      ...usage,
      cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 },
    };
    assert.equal(costOf(table, 'claude-sonnet-5', split), 19_500_000_000n);
    assert.equal(usdString(19_500_000_000n), '0.0195');
  });

  it('prices unsplit cache writes at the 5-minute price', () => {
    // 1000×2 + 3000×2.5 + 10000×0.2 + 500×10 = 16500 µ$
    assert.equal(costOf(table, 'claude-sonnet-5', usage), 16_500_000_000n);
    // A split that accounts for fewer writes than the total: the rest at the 5-minute price.
    const short = { ...usage, cache_creation: { ephemeral_1h_input_tokens: 2000 } };
    assert.equal(
      costOf(table, 'claude-sonnet-5', short),
      2_000_000_000n + 2_500_000_000n + 8_000_000_000n + 2_000_000_000n + 5_000_000_000n,
    );
  });

  it('gives null (unknown, never 0) for a model with no price, or no model', () => {
    assert.equal(costOf(table, 'claude-does-not-exist', usage), null);
    assert.equal(costOf(table, undefined, usage), null);
  });

  it('prices a partial usage (missing counts are 0), aliases like their snapshot', () => {
    // claude-opus-4-1: $75 output per MTok; 7 tokens = 525 µ$.
    assert.equal(costOf(table, 'claude-opus-4-1', { output_tokens: 7 }), 525_000_000n);
    assert.equal(costOf(table, 'claude-opus-4-1-20250805', { output_tokens: 7 }), 525_000_000n);
    assert.equal(costOf(table, 'claude-sonnet-5', {}), 0n);
    assert.equal(costOf(table, 'claude-sonnet-5', { input_tokens: null, output_tokens: -3 }), 0n);
    assert.equal(usdString(525_000_000n), '0.000525');
  });

  it('prices every token of a long prompt in the long-context band', () => {
    // claude-haiku-5-5: $0.10 / $0.50 up to 100K prompt tokens, $0.50 / $2.50 above.
    assert.equal(
      costOf(table, 'claude-haiku-5-5', { input_tokens: 100_000, output_tokens: 10 }),
      10_005_000_000n,
    );
    // The prompt counts cache reads and writes: 90001 + 10000 > 100000.
    assert.equal(
      costOf(table, 'claude-haiku-5-5', {
        input_tokens: 90_001,
        cache_read_input_tokens: 10_000,
        output_tokens: 10,
      }),
      90_001n * 500_000n + 10_000n * 50_000n + 10n * 2_500_000n,
    );
  });

  it('bounds a request before its usage: prompt at its dearest price, max_tokens at the output price', () => {
    // claude-sonnet-5: 1000 prompt tokens at the 1-hour write price ($4) + 100 × $10.
    assert.equal(worstCaseCost(table, 'claude-sonnet-5', 1000, 100), 5_000_000_000n);
    assert.equal(worstCaseCost(table, 'nope', 1000, 100), null);
    // claude-haiku-5-5: the long-context band only when the prompt may pass 100K tokens.
    assert.equal(worstCaseCost(table, 'claude-haiku-5-5', 10, 10), 10n * 200_000n + 10n * 500_000n);
    assert.equal(
      worstCaseCost(table, 'claude-haiku-5-5', 100_001, 10),
      100_001n * 1_000_000n + 10n * 2_500_000n,
    );
  });
});

describe('money strings', () => {
  it('writes pico-dollars as exact decimal dollars', () => {
    assert.equal(usdString(0n), '0');
    assert.equal(usdString(1n), '0.000000000001');
    assert.equal(usdString(1_500_000_000_000n), '1.5');
    assert.equal(usdString(123_456_789_000_000_000_001n), '123456789.000000000001');
    assert.equal(usdString(-2_000_000_000_000n), '-2');
  });

  it('reads decimal amounts exactly, refusing signs, exponents and excess decimals', () => {
    assert.equal(decimalUnits('12.50', 2), 1250n);
    assert.equal(decimalUnits(0.1, 6), 100_000n);
    assert.equal(decimalUnits(18.75, 6), 18_750_000n);
    assert.equal(decimalUnits('7', 12), 7_000_000_000_000n);
    assert.equal(decimalUnits(1e-7, 6), null);
    assert.equal(decimalUnits('0.0000001', 6), null);
    assert.equal(decimalUnits('-1', 6), null);
    assert.equal(decimalUnits('1e3', 6), null);
    assert.equal(decimalUnits(Number.NaN, 6), null);
    assert.equal(decimalUnits('', 6), null);
  });
});

describe('the price table', () => {
  it('ships a dated, sourced table with the current and legacy models and their aliases', () => {
    const { info } = shippedPrices();
    assert.match(info.taken, /^\d{4}-\d{2}-\d{2}$/);
    assert.match(info.source, /^https:\/\/platform\.claude\.com\//);
    for (const id of [
      'claude-sonnet-5',
      'claude-opus-5',
      'claude-haiku-4-5',
      'claude-haiku-4-5-20251001',
      'claude-3-haiku-20240307',
    ])
      assert.ok(table.has(id), id);
    assert.deepEqual(table.get('claude-haiku-4-5'), table.get('claude-haiku-4-5-20251001'));
  });

  it('defaults missing cache prices to 1.25×, 2× and 0.1× the input price', () => {
    const parsed = parsePrices({ 'claude-x-1': { input: 3, output: 15 } }, 'f');
    assert.deepEqual(parsed.get('claude-x-1'), {
      input: 3_000_000n,
      cacheWrite5m: 3_750_000n,
      cacheWrite1h: 6_000_000n,
      cacheRead: 300_000n,
      output: 15_000_000n,
    });
  });

  it('merges MODEL_PRICES_FILE over the shipped table, entry by entry', () => {
    const file = JSON.stringify({
      'claude-x-1': { input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3 },
      'claude-sonnet-5': { input: 1, output: 5 },
    });
    const merged = withFile(file, (path) => loadPriceTable(path));
    assert.equal(costOf(merged, 'claude-x-1', { input_tokens: 1_000_000 }), 3_000_000_000_000n);
    assert.equal(costOf(merged, 'claude-sonnet-5', { output_tokens: 1 }), 5_000_000n);
    assert.equal(merged.get('claude-opus-5'), table.get('claude-opus-5'));
    assert.equal(
      costOf(table, 'claude-sonnet-5', { output_tokens: 1 }),
      10_000_000n,
      'the shipped table is unchanged',
    );
  });

  it('refuses an invalid file with one line saying what is wrong where', () => {
    const cases: [string, RegExp][] = [
      ['{"claude-x-1": {"input": 3}}', /^MODEL_PRICES_FILE .*prices\.json: "claude-x-1"\.output is missing$/],
      [
        '{"claude-x-1": {"input": -3, "output": 1}}',
        /"claude-x-1"\.input must be a non-negative number of USD per million tokens/,
      ],
      [
        '{"claude-x-1": {"input": 3, "output": 1, "cache_reed": 1}}',
        /"claude-x-1" has an unknown field "cache_reed"/,
      ],
      ['{"claude-x-1": 3}', /"claude-x-1" must be an object of prices/],
      ['[1]', /must hold a JSON object of model prices/],
      ['{"claude-x-1": ', /is not valid JSON/],
    ];
    for (const [content, message] of cases)
      withFile(content, (path) => {
        assert.throws(
          () => loadPriceTable(path),
          (error: Error) => {
            assert.equal(error.name, 'ConfigError');
            assert.match(error.message, message);
            assert.doesNotMatch(error.message, /\n/);
            return true;
          },
        );
      });
    assert.throws(
      () => loadPriceTable('/nonexistent/prices.json'),
      /MODEL_PRICES_FILE \/nonexistent\/prices\.json cannot be read: ENOENT/,
    );
  });
});

describe('usage from the stream', () => {
  it('reads the 5m/1h split of cache writes from message_start and message_delta', () => {
    const reader = new MessageStreamReader(null);
    const decoder = new SseDecoder(reader.onEvent);
    decoder.push(
      Buffer.from(
        'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-sonnet-5","usage":{"input_tokens":5,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":1}}}\n\n' +
          'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}\n\n',
      ),
    );
    assert.deepEqual(reader.usage.cache_creation, {
      ephemeral_5m_input_tokens: 100,
      ephemeral_1h_input_tokens: 200,
    });
    // 5×2 + 100×2.5 + 200×4 + 9×10 = 1150 µ$
    assert.equal(costOf(table, 'claude-sonnet-5', reader.usage), 1_150_000_000n);
  });
});
