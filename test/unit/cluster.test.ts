import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { restartDelayMs } from '../../src/cluster/primary.ts';
import { ConfigError, loadConfig, parseArgs } from '../../src/config.ts';
import { checkClusterSetup } from '../../src/limits/setup.ts';

describe('WORKERS and --workers', () => {
  const base = { ANTHROPIC_API_KEY: 'k' };
  it('is an integer from 1, default 1; the flag wins', () => {
    assert.equal(loadConfig(base).workers, 1);
    assert.equal(loadConfig({ ...base, WORKERS: '3' }).workers, 3);
    assert.equal(loadConfig({ ...base, WORKERS: '3' }, parseArgs(['--workers', '2'])).workers, 2);
    assert.equal(loadConfig(base, parseArgs(['--workers=4'])).workers, 4);
    assert.throws(
      () => loadConfig({ ...base, WORKERS: '0' }),
      /^ConfigError: WORKERS must be an integer from 1/,
    );
    assert.throws(() => loadConfig(base, parseArgs(['--workers', 'x'])), /--workers must be an integer/);
    assert.throws(() => parseArgs(['--workers']), /--workers needs a value/);
  });
});

describe('checkClusterSetup', () => {
  /** The settings as loadConfig parses them from `env`, `--host` and `--workers`. */
  const settings = (env: Record<string, string>, host: string, workers: number) =>
    loadConfig({ ANTHROPIC_API_KEY: 'k', ...env }, parseArgs(['--host', host, '--workers', String(workers)]));
  const keys = { SERVICE_API_KEYS: 'alice:alice-key-0123456789abcdef' };
  it('needs REDIS_URL when several workers would each count limits in memory', () => {
    assert.throws(
      () => {
        checkClusterSetup(settings({ RATE_LIMIT_RPM: '10' }, '127.0.0.1', 2));
      },
      (e: unknown) => e instanceof ConfigError && /^2 workers .*REDIS_URL/.test(e.message),
    );
    assert.throws(() => {
      checkClusterSetup(settings({ ...keys, TOKEN_BUDGET_DAILY: '1000' }, '127.0.0.1', 4));
    }, ConfigError);
  });

  it('accepts Redis, one worker, client keys alone, and the per-process upstream cap', () => {
    checkClusterSetup(
      settings({ RATE_LIMIT_RPM: '10', REDIS_URL: 'redis://127.0.0.1:6379' }, '127.0.0.1', 2),
    );
    checkClusterSetup(settings({ RATE_LIMIT_RPM: '10' }, '127.0.0.1', 1));
    checkClusterSetup(settings(keys, '127.0.0.1', 2));
    checkClusterSetup(settings({ MAX_UPSTREAM_CONCURRENCY: '8' }, '127.0.0.1', 2));
  });

  it('makes the exposure check before any worker is forked', () => {
    assert.throws(() => {
      checkClusterSetup(settings({}, '0.0.0.0', 2));
    }, /refusing to listen on 0\.0\.0\.0/);
  });
});

describe('restartDelayMs', () => {
  it('grows from 250 ms, doubling, capped at 30 s', () => {
    assert.deepEqual([0, 1, 2, 3].map(restartDelayMs), [250, 500, 1000, 2000]);
    assert.equal(restartDelayMs(20), 30_000);
  });
});
