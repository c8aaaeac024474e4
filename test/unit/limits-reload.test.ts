/**
 * Re-reading SERVICE_API_KEYS_FILE (what SIGHUP does): the new keyring replaces the old one whole,
 * or not at all. The same behaviour over HTTP, with the service as a process: test/loopback/keys-reload.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig, parseArgs } from '../../src/config.ts';
import type { Guard } from '../../src/limits/guard.ts';
import { logKeysReload, setUpGuard, type GuardSetup, type KeysReload } from '../../src/limits/setup.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'keys-reload-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const quiet = { warn: () => undefined };
let files = 0;

/** A guard set up from a fresh keys file holding `text`; `write` replaces the file's contents. */
function guardFromFile(
  text: string,
  args: string[] = [],
): { setup: GuardSetup; guard: Guard; path: string; write: (text: string) => void } {
  const path = join(dir, `keys-${++files}`);
  writeFileSync(path, text);
  const setup = setUpGuard(
    loadConfig({ ANTHROPIC_API_KEY: 'k', SERVICE_API_KEYS_FILE: path }, parseArgs(args)),
    quiet,
    () => undefined,
  );
  assert.ok(setup.guard);
  return {
    setup,
    guard: setup.guard,
    path,
    write: (next) => {
      writeFileSync(path, next);
    },
  };
}

const as = (key: string) => ({ authorization: `Bearer ${key}` });

describe('reloadKeys', () => {
  it('swaps in the new file: an added key works, a removed one is invalid, changed limits apply', async () => {
    const { setup, guard, path, write } = guardFromFile(`alice:${ALICE} rpm=5\n`);
    assert.equal(guard.authenticate(as(BOB)), 'invalid');
    write(`alice:${ALICE} rpm=9 streams=2\nbob:${BOB}\n`);
    const result = setup.reloadKeys();
    assert.deepEqual(result, { ok: true, file: path, keys: 2 });
    assert.deepEqual(guard.authenticate(as(ALICE)), { name: 'alice', limits: { rpm: 9, streams: 2 } });
    assert.deepEqual(guard.authenticate(as(BOB)), { name: 'bob', limits: {} });
    write(`bob:${BOB}\n`);
    assert.equal(setup.reloadKeys().ok, true);
    assert.equal(guard.authenticate(as(ALICE)), 'invalid');
    assert.deepEqual(guard.authenticate(as(BOB)), { name: 'bob', limits: {} });
    await setup.close();
  });

  it('keeps every old key when the new file does not parse or cannot be read, naming the line or the file', async () => {
    const { setup, guard, path, write } = guardFromFile(`alice:${ALICE}\n`);
    // Line 2 is fine, line 3 is not: none of the file may apply, bob included.
    write(`# rotated\nbob:${BOB}\nalice:short\n`);
    assert.deepEqual(setup.reloadKeys(), {
      ok: false,
      file: path,
      error: 'SERVICE_API_KEYS_FILE line 3: the key must be at least 16 characters long',
    });
    assert.deepEqual(guard.authenticate(as(ALICE)), { name: 'alice', limits: {} });
    assert.equal(guard.authenticate(as(BOB)), 'invalid');

    write('# nobody\n');
    assert.deepEqual(setup.reloadKeys(), {
      ok: false,
      file: path,
      error: 'SERVICE_API_KEYS_FILE holds no keys',
    });
    rmSync(path);
    assert.match(
      (setup.reloadKeys() as { error?: string }).error ?? '',
      /^SERVICE_API_KEYS_FILE: cannot read ".*keys-\d+" \(ENOENT\)$/,
    );
    assert.deepEqual(guard.authenticate(as(ALICE)), { name: 'alice', limits: {} });
    await setup.close();
  });

  it('with several workers and no Redis, refuses a file that would add limits (each worker would count its own)', async () => {
    const { setup, guard, write } = guardFromFile(`alice:${ALICE}\n`, ['--workers', '2']);
    write(`alice:${ALICE} rpm=10\n`);
    assert.match(
      (setup.reloadKeys() as { error?: string }).error ?? '',
      /^2 workers with rate limits or budgets need REDIS_URL/,
    );
    assert.deepEqual(guard.authenticate(as(ALICE)), { name: 'alice', limits: {} });
    await setup.close();
  });

  it('has nothing to re-read with SERVICE_API_KEYS or without keys', async () => {
    const inline = setUpGuard(
      loadConfig({ ANTHROPIC_API_KEY: 'k', SERVICE_API_KEYS: `alice:${ALICE}` }),
      quiet,
      () => undefined,
    );
    assert.deepEqual(inline.reloadKeys(), {
      ok: false,
      file: undefined,
      error: 'no SERVICE_API_KEYS_FILE to reload (the keys come from SERVICE_API_KEYS)',
    });
    assert.deepEqual(inline.guard?.authenticate(as(ALICE)), { name: 'alice', limits: {} });
    const off = setUpGuard(loadConfig({ ANTHROPIC_API_KEY: 'k' }), quiet, () => undefined);
    assert.deepEqual(off.reloadKeys(), {
      ok: false,
      file: undefined,
      error: 'no SERVICE_API_KEYS_FILE to reload (client keys are off)',
    });
    await inline.close();
    await off.close();
  });
});

describe('logKeysReload', () => {
  it('writes one line: info with the count, error with the file and the line at fault, warn without a file', () => {
    const lines: [string, object, string][] = [];
    const logger = {
      info: (details: object, message: string) => lines.push(['info', details, message]),
      warn: (details: object, message: string) => lines.push(['warn', details, message]),
      error: (details: object, message: string) => lines.push(['error', details, message]),
    };
    const results: KeysReload[] = [
      { ok: true, file: '/etc/keys', keys: 3 },
      { ok: false, file: '/etc/keys', error: 'SERVICE_API_KEYS_FILE line 4: expected name:key' },
      { ok: false, file: undefined, error: 'no SERVICE_API_KEYS_FILE to reload (client keys are off)' },
    ];
    for (const result of results) logKeysReload(result, logger);
    assert.deepEqual(lines, [
      ['info', { file: '/etc/keys', keys: 3 }, 'client keys reloaded'],
      [
        'error',
        { file: '/etc/keys' },
        'client keys not reloaded, the old keys stay: SERVICE_API_KEYS_FILE line 4: expected name:key',
      ],
      ['warn', {}, 'client keys not reloaded: no SERVICE_API_KEYS_FILE to reload (client keys are off)'],
    ]);
  });
});
