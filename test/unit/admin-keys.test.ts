/**
 * Admin keys: ADMIN_API_KEYS and `role=admin` in the keys file. An admin key is also a client key, and
 * a reload of the keys file keeps the ADMIN_API_KEYS.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { loadAdminKeys, parseServiceApiKeysFile } from '../../src/limits/client-keys.ts';
import { setUpGuard } from '../../src/limits/setup.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOSS = 'boss-key-0123456789abcdef';
const OPS = 'ops-key-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'admin-keys-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
const as = (key: string) => ({ authorization: `Bearer ${key}` });
const quiet = { warn: () => undefined };

function configError(fn: () => unknown, mention: RegExp, secret?: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, mention);
    if (secret !== undefined) assert.ok(!error.message.includes(secret));
    return true;
  });
}

describe('admin keys', () => {
  it('ADMIN_API_KEYS takes the SERVICE_API_KEYS form; bare keys are named admin1, admin2…', () => {
    assert.deepEqual(loadAdminKeys({ ADMIN_API_KEYS: `boss:${BOSS},${OPS}` }), [
      { name: 'boss', key: BOSS, limits: {}, admin: true },
      { name: 'admin2', key: OPS, limits: {}, admin: true },
    ]);
    assert.equal(loadAdminKeys({ ADMIN_API_KEYS: ' ' }), null);
    configError(() => loadAdminKeys({ ADMIN_API_KEYS: 'boss:short' }), /ADMIN_API_KEYS entry 1/, 'short');
  });

  it('role=admin on a line of the keys file; any other role is refused', () => {
    const entries = parseServiceApiKeysFile(`alice:${ALICE} rpm=5\nboss:${BOSS} role=admin tpm=9\n`);
    assert.deepEqual(entries, [
      { name: 'alice', key: ALICE, limits: { rpm: 5 } },
      { name: 'boss', key: BOSS, limits: { tpm: 9 }, admin: true },
    ]);
    configError(() => parseServiceApiKeysFile(`boss:${BOSS} role=root`), /line 1: role must be admin/);
    configError(
      () => parseServiceApiKeysFile(`boss:${BOSS} role=admin role=admin`),
      /line 1: role is given twice/,
    );
  });

  it('an admin key is also a client key, beside SERVICE_API_KEYS', () => {
    const config = loadConfig({
      ANTHROPIC_API_KEY: 'k',
      SERVICE_API_KEYS: `alice:${ALICE}`,
      ADMIN_API_KEYS: `boss:${BOSS}`,
    });
    assert.deepEqual(config.clientKeys?.names, ['alice', 'boss']);
    assert.ok(config.clientKeys.identify(BOSS)?.admin);
    assert.equal(config.clientKeys.identify(ALICE)?.admin, undefined);
    // Admin keys alone turn authentication on.
    const alone = loadConfig({ ANTHROPIC_API_KEY: 'k', ADMIN_API_KEYS: `boss:${BOSS}` });
    assert.deepEqual(alone.clientKeys?.names, ['boss']);
  });

  it('a name or a key in both lists stops the start-up without echoing the key', () => {
    configError(
      () =>
        loadConfig({
          ANTHROPIC_API_KEY: 'k',
          SERVICE_API_KEYS: `boss:${ALICE}`,
          ADMIN_API_KEYS: `boss:${BOSS}`,
        }),
      /ADMIN_API_KEYS entry 1: the name "boss" is used twice/,
    );
    configError(
      () =>
        loadConfig({
          ANTHROPIC_API_KEY: 'k',
          SERVICE_API_KEYS: `alice:${BOSS}`,
          ADMIN_API_KEYS: `boss:${BOSS}`,
        }),
      /ADMIN_API_KEYS entry 1: the same key as a client key/,
      BOSS,
    );
  });

  it('a reload of the keys file keeps ADMIN_API_KEYS and takes role=admin from the new file', () => {
    const path = join(dir, 'keys');
    writeFileSync(path, `alice:${ALICE}\n`);
    const setup = setUpGuard(
      loadConfig({ ANTHROPIC_API_KEY: 'k', SERVICE_API_KEYS_FILE: path, ADMIN_API_KEYS: `boss:${BOSS}` }),
      quiet,
      () => undefined,
    );
    const guard = setup.guard;
    assert.ok(guard);
    writeFileSync(path, `alice:${ALICE} role=admin\nops:${OPS}\n`);
    assert.deepEqual(setup.reloadKeys(), { ok: true, file: path, keys: 3 });
    assert.deepEqual(guard.authenticate(as(BOSS)), { name: 'boss', limits: {}, admin: true });
    assert.deepEqual(guard.authenticate(as(ALICE)), { name: 'alice', limits: {}, admin: true });
    assert.deepEqual(guard.authenticate(as(OPS)), { name: 'ops', limits: {} });
    // A file that now holds the admin's name is refused whole; the old keys stay.
    writeFileSync(path, `boss:${OPS}\n`);
    const refused = setup.reloadKeys();
    assert.equal(refused.ok, false);
    assert.deepEqual(guard.authenticate(as(ALICE)), { name: 'alice', limits: {}, admin: true });
  });
});
