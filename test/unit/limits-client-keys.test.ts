import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { describe, it, mock } from 'node:test';
import { inspect } from 'node:util';
import { ConfigError } from '../../src/config.ts';
import {
  ClientKeyring,
  constantTimeEqual,
  extractPresentedKey,
  loadClientKeys,
  parseServiceApiKeys,
  parseServiceApiKeysFile,
} from '../../src/limits/client-keys.ts';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';
const BARE = 'bare-key-0123456789abcdef';

/** Asserts a one-line ConfigError that names `mention` and never contains `secret`. */
function throwsConfig(fn: () => unknown, mention: RegExp, secret?: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, mention);
    assert.doesNotMatch(error.message, /\n/);
    if (secret !== undefined) assert.ok(!error.message.includes(secret), `"${error.message}" leaks the key`);
    return true;
  });
}

describe('SERVICE_API_KEYS', () => {
  it('reads name:key and bare keys, which are named key1, key2… by position', () => {
    assert.deepEqual(parseServiceApiKeys(` alice:${ALICE} , ${BARE},bob:${BOB}`), [
      { name: 'alice', key: ALICE, limits: {} },
      { name: 'key2', key: BARE, limits: {} },
      { name: 'bob', key: BOB, limits: {} },
    ]);
  });

  it('rejects empty entries, short keys, bad names and duplicates, naming the entry but never the key', () => {
    throwsConfig(() => parseServiceApiKeys(`${ALICE},,${BOB}`), /^SERVICE_API_KEYS entry 2 is empty$/);
    throwsConfig(
      () => parseServiceApiKeys('alice:short-key'),
      /^SERVICE_API_KEYS entry 1: the key must be at least 16/,
      'short-key',
    );
    throwsConfig(() => parseServiceApiKeys(`al ice:${ALICE}`), /entry 1: the name must be/, ALICE);
    throwsConfig(
      () => parseServiceApiKeys(`a:${ALICE},a:${BOB}`),
      /entry 2: the name "a" is used twice/,
      BOB,
    );
    throwsConfig(() => parseServiceApiKeys(`a:${ALICE},b:${ALICE}`), /entry 2: the same key as "a"/, ALICE);
    throwsConfig(() => parseServiceApiKeys(`${ALICE},key1:${BOB}`), /entry 2: the name "key1" is used twice/);
    throwsConfig(() => parseServiceApiKeys(`a:${ALICE}\u00e9`), /printable ASCII/, ALICE);
  });
});

describe('SERVICE_API_KEYS_FILE', () => {
  it('reads one name:key a line with per-key limits, comments and blank lines (CRLF too)', () => {
    const text = [
      '# team keys',
      '',
      `alice:${ALICE} rpm=60 tpm=100000 daily=2000000 streams=4`,
      `  bob:${BOB}   # no overrides\r`,
      `carol:${BARE} rpm=0 usd_daily=12.5 usd_monthly=0`,
    ].join('\n');
    assert.deepEqual(parseServiceApiKeysFile(text), [
      { name: 'alice', key: ALICE, limits: { rpm: 60, tpm: 100000, daily: 2000000, streams: 4 } },
      { name: 'bob', key: BOB, limits: {} },
      { name: 'carol', key: BARE, limits: { rpm: 0, usd_daily: 12_500_000_000, usd_monthly: 0 } },
    ]);
  });

  it('names the line of every mistake and never echoes a key', () => {
    throwsConfig(
      () => parseServiceApiKeysFile(`# x\n${ALICE}`),
      /^SERVICE_API_KEYS_FILE line 2: expected name:key$/,
      ALICE,
    );
    throwsConfig(
      () => parseServiceApiKeysFile(`a:${ALICE} rpm=-1`),
      /line 1: rpm must be an integer >= 0/,
      ALICE,
    );
    throwsConfig(() => parseServiceApiKeysFile(`a:${ALICE} rpm=1.5`), /line 1: rpm must be an integer/);
    throwsConfig(
      () => parseServiceApiKeysFile(`a:${ALICE} usd_daily=ten`),
      /line 1: usd_daily must be an amount of US dollars/,
      ALICE,
    );
    throwsConfig(
      () => parseServiceApiKeysFile(`a:${ALICE} burst=3`),
      /line 1: unknown option "burst=3"/,
      ALICE,
    );
    throwsConfig(() => parseServiceApiKeysFile(`a:${ALICE} rpm=1 rpm=2`), /line 1: rpm is given twice/);
    throwsConfig(
      () => parseServiceApiKeysFile(`a:${ALICE}\n\nb:${ALICE}`),
      /line 3: the same key as "a"/,
      ALICE,
    );
    throwsConfig(
      () => parseServiceApiKeysFile('# nothing here\n\n'),
      /^SERVICE_API_KEYS_FILE holds no keys$/,
    );
  });
});

describe('loadClientKeys', () => {
  const files: Record<string, string> = { '/keys': `alice:${ALICE} rpm=5` };
  const readFile = (path: string): string => {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    return text;
  };

  it('is null (authentication off) when neither variable is set', () => {
    assert.equal(loadClientKeys({}, readFile), null);
    assert.equal(loadClientKeys({ SERVICE_API_KEYS: '  ', SERVICE_API_KEYS_FILE: '' }, readFile), null);
  });

  it('reads the variable or the file, not both', () => {
    assert.equal(loadClientKeys({ SERVICE_API_KEYS: BARE }, readFile)?.[0]?.name, 'key1');
    assert.deepEqual(loadClientKeys({ SERVICE_API_KEYS_FILE: '/keys' }, readFile)?.[0]?.limits, { rpm: 5 });
    throwsConfig(
      () => loadClientKeys({ SERVICE_API_KEYS: BARE, SERVICE_API_KEYS_FILE: '/keys' }, readFile),
      /only one of/,
    );
    throwsConfig(
      () => loadClientKeys({ SERVICE_API_KEYS_FILE: '/missing' }, readFile),
      /^SERVICE_API_KEYS_FILE: cannot read "\/missing" \(ENOENT\)$/,
    );
  });
});

describe('ClientKeyring', () => {
  const entries = parseServiceApiKeysFile(`alice:${ALICE} rpm=5\nbob:${BOB}\ncarol:${BARE}`);

  it('identifies the client of a presented key, and nobody for a wrong or missing one', () => {
    const keyring = new ClientKeyring(entries);
    assert.deepEqual(keyring.identify(BOB), { name: 'bob', limits: {} });
    assert.deepEqual(keyring.identify(ALICE), { name: 'alice', limits: { rpm: 5 } });
    assert.equal(keyring.identify(`${BOB}x`), null);
    assert.equal(keyring.identify(BOB.slice(0, -1)), null);
    assert.equal(keyring.identify(''), null);
    assert.equal(keyring.identify(undefined), null);
    assert.deepEqual(keyring.names, ['alice', 'bob', 'carol']);
  });

  it('compares the digest with every key, without stopping at the match', () => {
    const calls: [Buffer, Buffer][] = [];
    const keyring = new ClientKeyring(entries, (a, b) => {
      calls.push([a, b]);
      return constantTimeEqual(a, b);
    });
    assert.equal(keyring.identify(ALICE)?.name, 'alice');
    assert.equal(calls.length, 3);
    assert.ok(
      calls.every(([a, b]) => a.length === 32 && b.length === 32),
      'SHA-256 digests, not keys',
    );
    assert.equal(keyring.identify('wrong'), null);
    assert.equal(calls.length, 6);
  });

  it('uses crypto.timingSafeEqual by default (constant-time compare)', () => {
    const spy = mock.method(crypto, 'timingSafeEqual');
    syncBuiltinESMExports();
    try {
      const keyring = new ClientKeyring(entries);
      assert.equal(keyring.identify(BOB)?.name, 'bob');
      assert.equal(spy.mock.callCount(), 3);
      assert.equal(keyring.identify('wrong'), null);
      assert.equal(spy.mock.callCount(), 6);
    } finally {
      spy.mock.restore();
      syncBuiltinESMExports();
    }
  });

  it('keeps no key, only digests', () => {
    const shown = inspect(new ClientKeyring(entries), { showHidden: true, depth: 10 });
    for (const key of [ALICE, BOB, BARE]) assert.ok(!shown.includes(key));
  });
});

describe('extractPresentedKey', () => {
  it('reads Authorization: Bearer (any case), else x-api-key', () => {
    assert.equal(extractPresentedKey({ authorization: `Bearer ${ALICE}` }), ALICE);
    assert.equal(extractPresentedKey({ authorization: `bearer   ${ALICE} ` }), ALICE);
    assert.equal(extractPresentedKey({ 'x-api-key': ` ${BOB} ` }), BOB);
    assert.equal(extractPresentedKey({ authorization: `Bearer ${ALICE}`, 'x-api-key': BOB }), ALICE);
    assert.equal(extractPresentedKey({ authorization: 'Basic dXNlcjpwdw==', 'x-api-key': BOB }), BOB);
  });

  it('finds nothing in a missing, empty or malformed header', () => {
    assert.equal(extractPresentedKey({}), undefined);
    assert.equal(extractPresentedKey({ authorization: 'Bearer ' }), undefined);
    assert.equal(extractPresentedKey({ authorization: `Bearer a b` }), undefined);
    assert.equal(extractPresentedKey({ 'x-api-key': '' }), undefined);
    assert.equal(extractPresentedKey({ 'x-api-key': [ALICE, BOB] }), undefined);
  });
});
