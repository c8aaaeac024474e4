import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { ConfigError, loadConfig, parseArgs, parseBaseUrl, readEnvFile } from '../../src/config.ts';

const KEY = { ANTHROPIC_API_KEY: 'sk-test' };

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig(KEY);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8000);
    assert.equal(c.upstreamOrigin, 'https://api.anthropic.com');
    assert.equal(c.defaultModel, 'claude-sonnet-5');
    assert.equal(c.defaultMaxTokens, 1024);
    assert.equal(c.maxRetries, 2);
    assert.equal(c.connectTimeoutMs, 5000);
    assert.equal(c.readTimeoutMs, 60000);
    assert.equal(c.keepAliveIntervalMs, 15000);
    assert.equal(c.maxBodyBytes, 1048576);
    assert.equal(c.requestTimeoutMs, 30000);
    assert.equal(c.keepAliveTimeoutMs, 72000);
    assert.equal(c.maxConnections, 2048);
    assert.equal(c.logLevel, 'info');
    assert.ok(Object.isFrozen(c));
  });

  it('requires a key unless --mock, naming ANTHROPIC_API_KEY and .env', () => {
    assert.throws(
      () => loadConfig({}),
      (e: unknown) =>
        e instanceof ConfigError && /ANTHROPIC_API_KEY/.test(e.message) && /\.env/.test(e.message),
    );
    assert.equal(loadConfig({}, { mock: true }).mock, true);
  });

  it('rejects invalid settings with one line naming the variable', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ PORT: 'abc' }, /^PORT /],
      [{ PORT: '70000' }, /^PORT /],
      [{ UPSTREAM_READ_TIMEOUT: '-1' }, /^UPSTREAM_READ_TIMEOUT /],
      [{ UPSTREAM_CONNECT_TIMEOUT: '0' }, /^UPSTREAM_CONNECT_TIMEOUT /],
      [{ MAX_RETRIES: '1.5' }, /^MAX_RETRIES /],
      [{ MAX_BODY_BYTES: 'lots' }, /^MAX_BODY_BYTES /],
      [{ REQUEST_TIMEOUT: '0' }, /^REQUEST_TIMEOUT /],
      [{ KEEP_ALIVE_TIMEOUT: 'long' }, /^KEEP_ALIVE_TIMEOUT /],
      [{ MAX_CONNECTIONS: '-1' }, /^MAX_CONNECTIONS /],
      [{ MAX_CONNECTIONS: '10.5' }, /^MAX_CONNECTIONS /],
      [{ ANTHROPIC_MAX_TOKENS: '0' }, /^ANTHROPIC_MAX_TOKENS /],
      [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL /],
      [{ ANTHROPIC_BASE_URL: 'ftp://x' }, /^ANTHROPIC_BASE_URL /],
    ];
    for (const [env, pattern] of cases) {
      assert.throws(
        () => loadConfig({ ...KEY, ...env }),
        (e: unknown) => e instanceof ConfigError && pattern.test(e.message) && !e.message.includes('\n'),
        JSON.stringify(env),
      );
    }
  });

  it('accepts the base URL with or without /v1 or a trailing slash', () => {
    for (const url of [
      'http://127.0.0.1:9',
      'http://127.0.0.1:9/',
      'http://127.0.0.1:9/v1',
      'http://127.0.0.1:9/v1/',
    ]) {
      assert.deepEqual(parseBaseUrl(url), { origin: 'http://127.0.0.1:9', prefix: '' }, url);
    }
    assert.deepEqual(parseBaseUrl('https://proxy.example/anthropic/v1'), {
      origin: 'https://proxy.example',
      prefix: '/anthropic',
    });
  });

  it('lets flags override the environment', () => {
    const flags = parseArgs(['--mock', '--port', '9001', '--host=0.0.0.0']);
    assert.deepEqual(flags, { mock: true, port: '9001', host: '0.0.0.0' });
    const c = loadConfig({ PORT: '1234', HOST: '::1' }, flags);
    assert.equal(c.port, 9001);
    assert.equal(c.host, '0.0.0.0');
    assert.throws(() => parseArgs(['--verbose']), ConfigError);
    assert.throws(() => parseArgs(['--port']), ConfigError);
  });

  it('reads a .env file (a missing file is no error)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, '.env'), 'ANTHROPIC_API_KEY=from-file\n# comment\nPORT="8123"\n');
    assert.deepEqual(readEnvFile(join(dir, '.env')), { ANTHROPIC_API_KEY: 'from-file', PORT: '8123' });
    assert.deepEqual(readEnvFile(join(dir, 'missing')), {});
  });
});

describe('METRICS_REQUIRE_KEY', () => {
  const base = { ANTHROPIC_API_KEY: 'k' };
  it('is false by default, true or false when set, and anything else is refused with its name', () => {
    assert.equal(loadConfig(base).metricsRequireKey, false);
    assert.equal(loadConfig({ ...base, METRICS_REQUIRE_KEY: 'true' }).metricsRequireKey, true);
    assert.equal(loadConfig({ ...base, METRICS_REQUIRE_KEY: 'FALSE' }).metricsRequireKey, false);
    assert.throws(
      () => loadConfig({ ...base, METRICS_REQUIRE_KEY: 'yes' }),
      /^ConfigError: METRICS_REQUIRE_KEY must be true or false/,
    );
  });
});

describe('one rule for on/off settings', () => {
  const base = { ANTHROPIC_API_KEY: 'k' };
  it('true/false/1/0 in any case, blank for the default; anything else names the variable', () => {
    for (const name of ['ALLOW_UNAUTHENTICATED', 'METRICS_REQUIRE_KEY'] as const) {
      const read = (value: string): boolean => {
        const config = loadConfig({ ...base, [name]: value });
        return name === 'ALLOW_UNAUTHENTICATED' ? config.allowUnauthenticated : config.metricsRequireKey;
      };
      assert.deepEqual(['true', 'TRUE', ' 1 ', 'True'].map(read), [true, true, true, true], name);
      assert.deepEqual(
        ['false', 'False', '0', '', '  '].map(read),
        [false, false, false, false, false],
        name,
      );
      for (const bad of ['yes', 'on', '2', 'truee']) {
        assert.throws(
          () => read(bad),
          (e: unknown) =>
            e instanceof ConfigError &&
            e.message === `${name} must be true or false (or 1 or 0), got "${bad}"`,
          `${name}=${bad}`,
        );
      }
    }
  });
});

describe('client keys and limits in the config', () => {
  const ALICE = 'alice-key-0123456789abcdef';
  it('parses limits and inline keys; no keys means authentication off', () => {
    const off = loadConfig(KEY);
    assert.equal(off.clientKeys, null);
    assert.equal(off.clientKeysFile, undefined);
    assert.deepEqual(off.limits.defaults, {
      rpm: 0,
      tpm: 0,
      daily: 0,
      streams: 0,
      usd_daily: 0,
      usd_monthly: 0,
    });
    const on = loadConfig({
      ...KEY,
      SERVICE_API_KEYS: `alice:${ALICE}`,
      RATE_LIMIT_RPM: '7',
      REDIS_URL: 'redis://127.0.0.1:6379',
    });
    assert.deepEqual(on.clientKeys?.identify(ALICE), { name: 'alice', limits: {} });
    assert.equal(on.clientKeysFile, undefined);
    assert.equal(on.limits.defaults.rpm, 7);
    assert.equal(on.limits.redisUrl, 'redis://127.0.0.1:6379');
  });

  it('reads SERVICE_API_KEYS_FILE and keeps its path; the key itself is kept only as a digest', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cfg-keys-')), 'keys');
    writeFileSync(path, `# clients\nalice:${ALICE} rpm=3\n`);
    const config = loadConfig({ ...KEY, SERVICE_API_KEYS_FILE: ` ${path} ` });
    assert.equal(config.clientKeysFile, path);
    assert.deepEqual(config.clientKeys?.identify(ALICE), { name: 'alice', limits: { rpm: 3 } });
    assert.ok(
      !JSON.stringify(config).includes(ALICE) && !inspect(config, { depth: 10 }).includes(ALICE),
      'the config holds the key',
    );
  });

  it('throws the keys and limits errors in one line naming the variable or the line', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cfg-keys-')), 'keys');
    writeFileSync(path, `alice:${ALICE}\nbob:short\n`);
    const cases: [Record<string, string>, RegExp][] = [
      [
        { SERVICE_API_KEYS_FILE: path },
        /^SERVICE_API_KEYS_FILE line 2: the key must be at least 16 characters long$/,
      ],
      [
        { SERVICE_API_KEYS_FILE: `${path}.missing` },
        /^SERVICE_API_KEYS_FILE: cannot read ".*\.missing" \(ENOENT\)$/,
      ],
      [
        { SERVICE_API_KEYS: `alice:${ALICE}`, SERVICE_API_KEYS_FILE: path },
        /^Set only one of SERVICE_API_KEYS and SERVICE_API_KEYS_FILE$/,
      ],
      [{ RATE_LIMIT_TPM: '-1' }, /^RATE_LIMIT_TPM must be an integer >= 0/],
      [{ RATE_LIMIT_ON_REDIS_ERROR: 'maybe' }, /^RATE_LIMIT_ON_REDIS_ERROR must be/],
    ];
    for (const [env, pattern] of cases) {
      assert.throws(
        () => loadConfig({ ...KEY, ...env }),
        (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
        JSON.stringify(env),
      );
    }
  });
});

describe('resumable answers settings', () => {
  it('on by default, with a 30 s grace and a 600 s TTL', () => {
    assert.deepEqual(loadConfig(KEY).answers, { enabled: true, graceMs: 30_000, ttlMs: 600_000 });
    const set = loadConfig({
      ...KEY,
      RESUME_GRACE_SECONDS: '0.5',
      ANSWER_TTL_SECONDS: '60',
      RESUMABLE_ANSWERS: 'false',
    });
    assert.deepEqual(set.answers, { enabled: false, graceMs: 500, ttlMs: 60_000 });
  });

  it('several workers: off without REDIS_URL, on with it; asking for them without Redis stops the start-up', () => {
    assert.equal(loadConfig({ ...KEY, WORKERS: '2' }).answers.enabled, false);
    assert.equal(
      loadConfig({ ...KEY, WORKERS: '2', REDIS_URL: 'redis://127.0.0.1:6379' }).answers.enabled,
      true,
    );
    assert.throws(
      () => loadConfig({ ...KEY, RESUMABLE_ANSWERS: 'true' }, { mock: false, workers: '2' }),
      (e: unknown) =>
        e instanceof ConfigError && /^RESUMABLE_ANSWERS with 2 workers needs REDIS_URL/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ ...KEY, RESUME_GRACE_SECONDS: '0' }),
      (e: unknown) => e instanceof ConfigError && /^RESUME_GRACE_SECONDS/.test(e.message),
    );
  });
});
