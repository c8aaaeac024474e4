import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replaceModel } from '../../src/anthropic/replace-model.ts';
import { ConfigError, loadConfig, parseModelList } from '../../src/config.ts';
import { fallbackChain } from '../../src/upstream/fallbacks.ts';

function replaced(body: string, model: string): string | undefined {
  return replaceModel(Buffer.from(body), model)?.toString('utf8');
}

describe('replaceModel: only the top-level model value changes', () => {
  it('keeps every other byte: spacing, key order, escapes, nested "model" keys', () => {
    const body =
      '\ufeff {"a":{"model":"x","b":["model",{"model":"y"}]},"s":"q\\"model\\"",  "model" :\t"x" ,"n":-1.50e+3,"t":true,"z":null}';
    assert.equal(
      replaced(body, 'claude-haiku-4-5'),
      '\ufeff {"a":{"model":"x","b":["model",{"model":"y"}]},"s":"q\\"model\\"",  "model" :\t"claude-haiku-4-5" ,"n":-1.50e+3,"t":true,"z":null}',
    );
  });

  it('finds an escaped key and replaces every duplicate', () => {
    assert.equal(
      replaced('{"mod\\u0065l":"a","x":1,"model":"b"}', 'm'),
      '{"mod\\u0065l":"m","x":1,"model":"m"}',
    );
  });

  it('serialises the new value as JSON', () => {
    assert.equal(replaced('{"model":"a"}', 'we"ird'), '{"model":"we\\"ird"}');
  });

  it('gives undefined when there is no top-level string model', () => {
    assert.equal(replaced('{"messages":[{"model":"a"}]}', 'm'), undefined);
    assert.equal(replaced('{"model":42}', 'm'), undefined);
    assert.equal(replaced('[{"model":"a"}]', 'm'), undefined);
    assert.equal(replaced('{}', 'm'), undefined);
  });

  it('handles multi-byte UTF-8 around the value', () => {
    assert.equal(replaced('{"ü":"日本","model":"a","é":"ß"}', 'b'), '{"ü":"日本","model":"b","é":"ß"}');
  });
});

describe('fallbackChain', () => {
  const list = ['a', 'b', 'c'];
  it('tries the models after the requested one, or all when it is not listed', () => {
    assert.deepEqual(fallbackChain('a', list), ['b', 'c']);
    assert.deepEqual(fallbackChain('b', list), ['c']);
    assert.deepEqual(fallbackChain('c', list), []);
    assert.deepEqual(fallbackChain('x', list), ['a', 'b', 'c']);
    assert.deepEqual(fallbackChain(undefined, list), []);
    assert.deepEqual(fallbackChain('a', []), []);
  });
});

describe('FALLBACK_MODELS setting', () => {
  const base = { ANTHROPIC_API_KEY: 'k' };
  it('is a trimmed, ordered list; one-line errors name it', () => {
    assert.deepEqual(parseModelList(' claude-opus-5 , claude-haiku-4-5,, '), [
      'claude-opus-5',
      'claude-haiku-4-5',
    ]);
    assert.deepEqual(loadConfig(base).fallbackModels, []);
    assert.deepEqual(
      loadConfig({ ...base, FALLBACK_MODELS: 'us.anthropic.claude-x:0,claude-y@2025' }).fallbackModels,
      ['us.anthropic.claude-x:0', 'claude-y@2025'],
    );
    assert.throws(
      () => loadConfig({ ...base, FALLBACK_MODELS: 'a b' }),
      (e: unknown) => e instanceof ConfigError && /^FALLBACK_MODELS /.test(e.message),
    );
    assert.throws(
      () => loadConfig({ ...base, FALLBACK_MODELS: 'a,\nb"' }),
      (e: unknown) => e instanceof ConfigError && !e.message.includes('\n'),
    );
    assert.throws(() => loadConfig({ ...base, FALLBACK_MODELS: 'a,b,a' }), /FALLBACK_MODELS lists "a" twice/);
  });
});
