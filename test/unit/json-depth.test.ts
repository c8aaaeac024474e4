import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_JSON_DEPTH, nestsDeeperThan, tooDeepPath } from '../../src/json-depth.ts';

/** `{"a":{"a":…1…}}`, `levels` objects deep. */
function nestedObjects(levels: number): string {
  return '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);
}

describe('JSON depth', () => {
  it('counts levels of objects and arrays, the outermost being level 1', () => {
    assert.equal(nestsDeeperThan('1', 0), false);
    assert.equal(nestsDeeperThan('{}', 0), true);
    assert.equal(nestsDeeperThan('{}', 1), false);
    assert.equal(nestsDeeperThan('[[{"a":[]}]]', 3), true);
    assert.equal(nestsDeeperThan('[[{"a":[]}]]', 4), false);
    assert.equal(nestsDeeperThan('[[],[],[],[]]', 2), false, 'siblings do not add up');
    assert.equal(nestsDeeperThan(nestedObjects(MAX_JSON_DEPTH)), false);
    assert.equal(nestsDeeperThan(nestedObjects(MAX_JSON_DEPTH + 1)), true);
  });

  it('ignores brackets inside strings, escaped quotes and backslashes included', () => {
    const strings = ['[[[[[[', '\\"[[[[[[', '\\\\', '\\\\\\"{{{{', 'a\\u0022[[[['];
    for (const s of strings) {
      const text = `{"k${s}":"${s}","n":[["${s}"]]}`;
      assert.doesNotThrow(() => JSON.parse(text), text);
      assert.equal(nestsDeeperThan(text, 3), false, text);
      assert.equal(nestsDeeperThan(text, 2), true, text);
    }
  });

  it('handles any depth without recursion', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    assert.equal(nestsDeeperThan(deep), true);
    assert.equal(tooDeepPath(JSON.parse(deep) as unknown), '[0][0][0][0][0][0][0][0]…');
  });

  it('names the first field that goes too deep, in document order', () => {
    const schema = JSON.parse(
      `{"type":"object","properties":{"a":${'{"type":"object","properties":{"a":'.repeat(40)}{}${'}}'.repeat(40)}}}`,
    ) as unknown;
    const body = {
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      tools: [
        { type: 'function', function: { name: 'ok', parameters: {} } },
        { type: 'function', function: { name: 'deep', parameters: schema } },
      ],
    };
    assert.equal(tooDeepPath(body), 'tools[1].function.parameters.properties.a.properties.a…');
    assert.equal(tooDeepPath(body, 200), undefined);
    assert.equal(tooDeepPath({ 'a key with spaces': [[[]]] }, 2), '["a key with spaces"][0]');
    assert.equal(tooDeepPath('text'), undefined);
  });
});
