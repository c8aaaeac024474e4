import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config.ts';
import { countTokens, hasAnyLimit, parseLimitSettings, resolveLimits } from '../../src/limits/limits.ts';

describe('parseLimitSettings', () => {
  it('defaults to no limits, no Redis, fail open', () => {
    assert.deepEqual(parseLimitSettings({}), {
      defaults: { rpm: 0, tpm: 0, daily: 0, streams: 0, usd_daily: 0, usd_monthly: 0 },
      maxUpstreamConcurrency: 0,
      redisUrl: undefined,
      redisErrorPolicy: 'open',
      redisTimeoutMs: 200,
    });
  });

  it('reads every setting', () => {
    const settings = parseLimitSettings({
      RATE_LIMIT_RPM: '60',
      RATE_LIMIT_TPM: ' 100000 ',
      TOKEN_BUDGET_DAILY: '2000000',
      MAX_CONCURRENT_STREAMS: '4',
      MAX_UPSTREAM_CONCURRENCY: '32',
      REDIS_URL: 'rediss://:pw@redis.internal:6380/2',
      RATE_LIMIT_ON_REDIS_ERROR: 'Closed',
      REDIS_TIMEOUT_MS: '1500',
      BUDGET_USD_DAILY: '12.5',
      BUDGET_USD_MONTHLY: ' 300 ',
    });
    assert.deepEqual(settings, {
      defaults: {
        rpm: 60,
        tpm: 100000,
        daily: 2000000,
        streams: 4,
        usd_daily: 12_500_000_000,
        usd_monthly: 300_000_000_000,
      },
      maxUpstreamConcurrency: 32,
      redisUrl: 'rediss://:pw@redis.internal:6380/2',
      redisErrorPolicy: 'closed',
      redisTimeoutMs: 1500,
    });
    assert.ok(Object.isFrozen(settings) && Object.isFrozen(settings.defaults));
  });

  it('says in one line which variable is wrong', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ RATE_LIMIT_RPM: '-1' }, /^RATE_LIMIT_RPM must be an integer >= 0 \(0 = no limit\), got "-1"$/],
      [{ RATE_LIMIT_TPM: '1e3' }, /^RATE_LIMIT_TPM must be an integer/],
      [{ TOKEN_BUDGET_DAILY: '99999999999999999999' }, /^TOKEN_BUDGET_DAILY must be/],
      [{ MAX_CONCURRENT_STREAMS: 'four' }, /^MAX_CONCURRENT_STREAMS must be/],
      [{ REDIS_TIMEOUT_MS: '0' }, /^REDIS_TIMEOUT_MS must be an integer from 1 to 60000/],
      [{ MAX_UPSTREAM_CONCURRENCY: '2.5' }, /^MAX_UPSTREAM_CONCURRENCY must be/],
      [{ BUDGET_USD_DAILY: '-5' }, /^BUDGET_USD_DAILY must be an amount of US dollars from 0 to 9000000/],
      [{ BUDGET_USD_MONTHLY: '$50' }, /^BUDGET_USD_MONTHLY must be an amount of US dollars/],
      [{ BUDGET_USD_MONTHLY: '9000000.000000001' }, /^BUDGET_USD_MONTHLY must be/],
      [{ BUDGET_USD_DAILY: '0.0000000001' }, /^BUDGET_USD_DAILY must be/],
      [
        { RATE_LIMIT_ON_REDIS_ERROR: 'maybe' },
        /^RATE_LIMIT_ON_REDIS_ERROR must be "open" or "closed", got "maybe"$/,
      ],
      [{ REDIS_URL: 'http://x' }, /^REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/],
    ];
    for (const [env, message] of cases)
      assert.throws(
        () => parseLimitSettings(env),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
      );
  });

  it('never echoes REDIS_URL, which may hold a password', () => {
    assert.throws(
      () => parseLimitSettings({ REDIS_URL: 'redis//:hunter2@host' }),
      (e: unknown) => e instanceof ConfigError && !e.message.includes('hunter2'),
    );
  });
});

describe('limit helpers', () => {
  it('resolveLimits puts a key’s overrides over the defaults, 0 included', () => {
    const defaults = { rpm: 60, tpm: 1000, daily: 5000, streams: 2, usd_daily: 0, usd_monthly: 7 };
    assert.deepEqual(resolveLimits(defaults, {}), defaults);
    assert.deepEqual(resolveLimits(defaults, { rpm: 0, streams: 8, usd_daily: 5 }), {
      rpm: 0,
      tpm: 1000,
      daily: 5000,
      streams: 8,
      usd_daily: 5,
      usd_monthly: 7,
    });
  });

  it('hasAnyLimit', () => {
    assert.equal(hasAnyLimit({ rpm: 0, tpm: 0, daily: 0, streams: 0, usd_daily: 0, usd_monthly: 0 }), false);
    assert.equal(hasAnyLimit({ rpm: 0, tpm: 0, daily: 0, streams: 1, usd_daily: 0, usd_monthly: 0 }), true);
    assert.equal(hasAnyLimit({ rpm: 0, tpm: 0, daily: 0, streams: 0, usd_daily: 0, usd_monthly: 1 }), true);
  });

  it('countTokens adds input, output and both cache counts; missing parts count 0', () => {
    const usage = {
      input_tokens: 10,
      output_tokens: 20,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 4000,
    };
    assert.equal(countTokens(usage), 4330);
    assert.equal(countTokens({ output_tokens: 7 }), 7);
    assert.equal(countTokens(undefined), 0);
    assert.equal(countTokens({ input_tokens: -5, output_tokens: Number.NaN }), 0);
  });
});
