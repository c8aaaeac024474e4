/**
 * The service loads undici's Pool by a private module path (src/upstream/undici-pool.ts), which a new
 * undici version may move: this fails by name when it does, before anything ships.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { UNDICI_POOL_MODULE, UndiciPool } from '../../src/upstream/undici-pool.ts';

const require = createRequire(import.meta.url);

describe(`undici's private ${UNDICI_POOL_MODULE}`, () => {
  it('still exists and is the Pool undici exports', () => {
    assert.doesNotThrow(
      () => require.resolve(UNDICI_POOL_MODULE),
      `${UNDICI_POOL_MODULE} is gone from this undici: import Pool from 'undici' in src/upstream/undici-pool.ts instead`,
    );
    assert.equal(UndiciPool, (require('undici') as { Pool: unknown }).Pool);
  });

  it('comes from an undici pinned to an exact version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.match(pkg.dependencies.undici ?? '', /^\d+\.\d+\.\d+$/);
  });
});
