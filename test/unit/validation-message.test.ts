import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fieldPath, plainValidation } from '../../src/http/validation-message.ts';

describe('validation errors in plain words', () => {
  it('names nested fields as a client writes them', () => {
    assert.equal(fieldPath('/messages/0/role'), 'messages[0].role');
    assert.equal(fieldPath(''), 'body');
    assert.equal(fieldPath('', 'foo'), 'foo');
    assert.equal(fieldPath('/tools/2/function', 'name'), 'tools[2].function.name');
  });

  it('an unknown field is named', () => {
    const plain = plainValidation([
      { keyword: 'additionalProperties', instancePath: '', params: { additionalProperty: 'promt' } },
    ]);
    assert.deepEqual(plain.param, 'promt');
    assert.match(plain.message, /^"promt" is not a field of the body/);
  });

  it('a blank string says blank, not the pattern', () => {
    const plain = plainValidation([
      {
        keyword: 'pattern',
        instancePath: '/prompt',
        params: { pattern: '\\S' },
        message: 'must match pattern "\\S"',
      },
    ]);
    assert.equal(plain.message, '"prompt" must not be blank');
  });

  it('constant alternatives are listed once, by value', () => {
    const plain = plainValidation([
      { keyword: 'const', instancePath: '/messages/1/role', params: { allowedValue: 'user' } },
      { keyword: 'const', instancePath: '/messages/1/role', params: { allowedValue: 'assistant' } },
      { keyword: 'anyOf', instancePath: '/messages/1/role', params: {} },
    ]);
    assert.deepEqual(plain, {
      param: 'messages[1].role',
      message: '"messages[1].role" must be "user" or "assistant"',
    });
  });

  it('a nullable field says both types', () => {
    const plain = plainValidation([
      { keyword: 'type', instancePath: '/temperature', params: { type: 'number' } },
      { keyword: 'type', instancePath: '/temperature', params: { type: 'null' } },
      { keyword: 'anyOf', instancePath: '/temperature', params: {} },
    ]);
    assert.equal(plain.message, '"temperature" must be a number or null');
  });

  it('bounds, types and required fields', () => {
    assert.equal(
      plainValidation([{ keyword: 'maximum', instancePath: '/max_tokens', params: { limit: 128000 } }])
        .message,
      '"max_tokens" must be at most 128000',
    );
    assert.equal(
      plainValidation([{ keyword: 'type', instancePath: '/max_tokens', params: { type: 'integer' } }])
        .message,
      '"max_tokens" must be a whole number',
    );
    assert.equal(
      plainValidation([
        { keyword: 'required', instancePath: '/messages/0', params: { missingProperty: 'content' } },
      ]).message,
      '"messages[0].content" is required',
    );
    assert.equal(
      plainValidation([{ keyword: 'minItems', instancePath: '/messages', params: { limit: 1 } }]).message,
      '"messages" must not be empty',
    );
  });
});
