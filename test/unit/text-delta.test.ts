import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_LENGTH, textDeltaLiteral } from '../../src/anthropic/text-delta.ts';

const event = (text: string, index = 0) =>
  JSON.stringify({ type: 'content_block_delta', index, delta: { type: 'text_delta', text } });

describe('textDeltaLiteral', () => {
  it('returns the JSON literal of the text, which decodes to exactly the text', () => {
    for (const text of [
      'Hello',
      '',
      'wörld 🌍',
      'say "hi"\n\tand \\ back',
      '\u2028\u0000\u001f',
      '}}"}}',
      'a\\"}}',
    ]) {
      const literal = textDeltaLiteral(event(text, 12));
      assert.ok(literal !== null, text);
      assert.equal(JSON.parse(literal), text);
    }
  });

  it('accepts \\u escapes and / escapes as the upstream may send them', () => {
    const data =
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"caf\\u00e9 a\\/b"}}';
    assert.equal(textDeltaLiteral(data), '"caf\\u00e9 a\\/b"');
  });

  it('declines every other shape so that the caller parses it', () => {
    const declined = [
      '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "spaced"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","extra":"b"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"x":"y"}}',
      '{"type":"content_block_delta","index":,"delta":{"type":"text_delta","text":"a"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"bad \\x escape"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"bad \\u12 escape"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"unterminated \\"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"raw\nnewline"}}',
      '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"}}',
    ];
    for (const data of declined) assert.equal(textDeltaLiteral(data), null, data);
  });

  it('leaves data longer than its limit to JSON.parse, and takes it up to the limit', () => {
    const fits = 'x'.repeat(MAX_LENGTH - event('').length);
    assert.equal(textDeltaLiteral(event(fits)), JSON.stringify(fits));
    assert.equal(textDeltaLiteral(event(`${fits}y`)), null);
  });
});
