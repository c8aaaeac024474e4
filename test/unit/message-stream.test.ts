import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { buildMessagesBody } from '../../src/anthropic/build-request.ts';
import { MessageStreamReader } from '../../src/anthropic/message-stream.ts';
import { MAX_LENGTH, textDeltaLiteral } from '../../src/anthropic/text-delta.ts';
import { SseDecoder } from '../../src/sse/decoder.ts';

function read(sse: string | Buffer): { texts: string[]; reader: MessageStreamReader } {
  const texts: string[] = [];
  const reader = new MessageStreamReader((literal) => texts.push(JSON.parse(literal) as string));
  new SseDecoder(reader.onEvent).push(Buffer.from(sse));
  return { texts, reader };
}

describe('MessageStreamReader', () => {
  it('extracts text deltas exactly, usage from message_start and message_delta, and completion', () => {
    const { texts, reader } = read(readFileSync(new URL('../fixtures/text.sse', import.meta.url)));
    assert.deepEqual(texts, ['Héllo, ', 'wörld 🌍\n"quoted"']);
    assert.deepEqual(reader.usage, {
      input_tokens: 11,
      output_tokens: 6,
      cache_creation_input_tokens: 2,
      cache_read_input_tokens: 3,
    });
    assert.equal(reader.stopReason, 'end_turn');
    assert.equal(reader.model, 'claude-sonnet-5');
    assert.equal(reader.completed, true);
    assert.equal(reader.failure, null);
  });

  it('gives the same texts for deltas the fast path declines (spaced JSON, longer than its limit)', () => {
    const long = `${'é"\\\n'.repeat(MAX_LENGTH / 4)}end`;
    const deltas = ['compact', 'spaced', long];
    const sse = deltas
      .map((text, i) => {
        const data = JSON.stringify(
          { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } },
          null,
          i === 1 ? 1 : undefined,
        );
        return `event: content_block_delta\ndata: ${data.replaceAll('\n', '')}\n\n`;
      })
      .join('');
    assert.equal(
      textDeltaLiteral(
        `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":${JSON.stringify(long)}}}`,
      ),
      null,
    );
    assert.deepEqual(read(sse).texts, deltas);
  });

  it('reports a mid-stream error event as a failure and ignores what follows', () => {
    const { texts, reader } = read(
      'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}\n\n',
    );
    assert.deepEqual(reader.failure, { type: 'overloaded_error', message: 'Overloaded' });
    assert.deepEqual(texts, []);
  });

  it('treats unparseable data as a failure, and ignores unknown events and non-text deltas', () => {
    assert.equal(
      read('event: content_block_delta\ndata: {"type":\n\n').reader.failure?.type,
      'upstream_error',
    );
    for (const notAnObject of ['null', '42', '"text"']) {
      const { reader } = read(`event: message_delta\ndata: ${notAnObject}\n\n`);
      assert.deepEqual(reader.failure, {
        type: 'upstream_error',
        message: 'Upstream sent unparseable data in a "message_delta" event',
      });
    }
    const { texts, reader } = read(
      'event: brand_new\ndata: {"type":"brand_new"}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}\n\n',
    );
    assert.deepEqual(texts, []);
    assert.equal(reader.failure, null);
    assert.equal(reader.completed, false);
  });
});

describe('buildMessagesBody', () => {
  it('turns a prompt into one user message with defaults, always streaming upstream', () => {
    assert.deepEqual(JSON.parse(buildMessagesBody({ prompt: 'hi' }, { model: 'm', maxTokens: 5 })), {
      model: 'm',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
  });

  it('passes messages and the optional fields that were given', () => {
    const body = JSON.parse(
      buildMessagesBody(
        {
          messages: [{ role: 'user', content: 'a' }],
          system: 's',
          model: 'x',
          max_tokens: 9,
          temperature: 0,
          top_k: 3,
          stop_sequences: ['END'],
        },
        { model: 'm', maxTokens: 5 },
      ),
    ) as Record<string, unknown>;
    assert.deepEqual(body, {
      model: 'x',
      max_tokens: 9,
      messages: [{ role: 'user', content: 'a' }],
      stream: true,
      system: 's',
      temperature: 0,
      top_k: 3,
      stop_sequences: ['END'],
    });
  });
});
