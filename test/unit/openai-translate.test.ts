import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MessageAccumulator } from '../../src/anthropic/message-accumulator.ts';
import type { StreamFailure } from '../../src/anthropic/message-stream.ts';
import { ignoredFieldsHeader } from '../../src/http/chat-completions-route.ts';
import { openAIErrorBody } from '../../src/openai/error-body.ts';
import {
  anthropicModelsToOpenAI,
  ChunkTranslator,
  finishReason,
  messageToCompletion,
} from '../../src/openai/from-anthropic.ts';
import type { ChatCompletionRequest } from '../../src/openai/request-schema.ts';
import { toAnthropic, type Translation } from '../../src/openai/to-anthropic.ts';
import { SseDecoder } from '../../src/sse/decoder.ts';

const DEFAULTS = { model: 'claude-sonnet-5', maxTokens: 1024 };
const NAMES = { id: 'chatcmpl-req1', model: 'requested-model', created: 1_700_000_000 };
const TEXT_SSE = readFileSync(new URL('../fixtures/text.sse', import.meta.url));
const TOOL_SSE = readFileSync(new URL('../fixtures/tool-use.sse', import.meta.url));

function translate(request: Record<string, unknown>): Translation {
  return toAnthropic(request as ChatCompletionRequest, DEFAULTS);
}

function ok(request: Record<string, unknown>): Extract<Translation, { ok: true }> {
  const result = translate(request);
  assert.ok(result.ok, JSON.stringify(result));
  return result;
}

function problems(request: Record<string, unknown>): { param: string; message: string }[] {
  const result = translate(request);
  assert.ok(!result.ok, 'expected a 400');
  return result.problems;
}

const user = (content: unknown) => ({ role: 'user', content });

describe('toAnthropic: OpenAI request → Messages request', () => {
  it('maps the scalar fields, with defaults', () => {
    assert.deepEqual(ok({ messages: [user('Hi')] }).body, {
      model: 'claude-sonnet-5',
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Hi' }],
      stream: false,
    });
    const { body, includeUsage } = ok({
      model: 'claude-haiku-4-5',
      messages: [user('Hi')],
      max_tokens: 50,
      max_completion_tokens: 70,
      temperature: 1.7,
      top_p: 0.9,
      stop: 'END',
      stream: true,
      stream_options: { include_usage: true },
      user: 'user-42',
    });
    assert.deepEqual(body, {
      model: 'claude-haiku-4-5',
      max_tokens: 70,
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      temperature: 1,
      top_p: 0.9,
      stop_sequences: ['END'],
      metadata: { user_id: 'user-42' },
    });
    assert.equal(includeUsage, true);
    assert.deepEqual(
      ok({ messages: [user('x')], stop: ['a', 'b'], max_tokens: 9, temperature: 0.3 }).body.stop_sequences,
      ['a', 'b'],
    );
    assert.equal(ok({ messages: [user('x')], max_tokens: 9 }).body.max_tokens, 9);
    assert.equal(ok({ messages: [user('x')], stop: [] }).body.stop_sequences, undefined);
  });

  it('joins system and developer messages into system, wherever they are', () => {
    const { body } = ok({
      messages: [
        { role: 'system', content: 'Be terse.' },
        {
          role: 'developer',
          content: [
            { type: 'text', text: 'Answer in ' },
            { type: 'text', text: 'French.' },
          ],
        },
        user('Hi'),
        { role: 'system', content: 'Late rule.' },
      ],
    });
    assert.equal(body.system, 'Be terse.\n\nAnswer in French.\n\nLate rule.');
    assert.deepEqual(body.messages, [{ role: 'user', content: 'Hi' }]);
  });

  it('merges consecutive turns of one role, keeps text and images in order', () => {
    const { body } = ok({
      messages: [
        user('First'),
        user([
          { type: 'text', text: 'Look:' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'high' } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
        ]),
        { role: 'assistant', content: 'A cat.' },
      ],
    });
    assert.deepEqual(body.messages, [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'First' },
          { type: 'text', text: 'Look:' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
        ],
      },
      { role: 'assistant', content: 'A cat.' },
    ]);
  });

  it('turns assistant tool_calls into tool_use blocks and tool messages into one user turn of tool_result blocks', () => {
    const { body } = ok({
      messages: [
        user('Weather in Paris and the time?'),
        {
          role: 'assistant',
          content: null,
          refusal: null,
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
            { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18 °C' },
        { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '14:00' }] },
        user('Thanks'),
      ],
    });
    assert.deepEqual(body.messages, [
      { role: 'user', content: 'Weather in Paris and the time?' },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_time', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '18 °C' },
          { type: 'tool_result', tool_use_id: 'call_2', content: [{ type: 'text', text: '14:00' }] },
          { type: 'text', text: 'Thanks' },
        ],
      },
    ]);
  });

  it('keeps assistant text before its tool calls, and refusal parts as text', () => {
    const { body } = ok({
      messages: [
        user('x'),
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Let me see. ' },
            { type: 'refusal', refusal: 'No.' },
          ],
          tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }],
        },
      ],
    });
    assert.deepEqual(body.messages[1]?.content, [
      { type: 'text', text: 'Let me see. No.' },
      { type: 'tool_use', id: 'c', name: 'f', input: {} },
    ]);
  });

  it('maps function tools and every tool_choice', () => {
    const tools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
          strict: true,
        },
      },
      { type: 'function', function: { name: 'now' } },
    ];
    const { body, ignored } = ok({ messages: [user('x')], tools });
    assert.deepEqual(body.tools, [
      {
        name: 'get_weather',
        description: 'Weather',
        input_schema: { type: 'object', properties: { city: { type: 'string' } } },
      },
      { name: 'now', input_schema: { type: 'object', properties: {} } },
    ]);
    assert.equal(body.tool_choice, undefined);
    assert.deepEqual(ignored, ['tools[].function.strict']);
    const choice = (tool_choice: unknown, extra: Record<string, unknown> = {}) =>
      ok({ messages: [user('x')], tools, tool_choice, ...extra }).body.tool_choice;
    assert.deepEqual(choice('auto'), { type: 'auto' });
    assert.deepEqual(choice('none'), { type: 'none' });
    assert.deepEqual(choice('required'), { type: 'any' });
    assert.deepEqual(choice({ type: 'function', function: { name: 'now' } }), { type: 'tool', name: 'now' });
    assert.deepEqual(choice(null, { parallel_tool_calls: false }), {
      type: 'auto',
      disable_parallel_tool_use: true,
    });
    assert.deepEqual(choice('required', { parallel_tool_calls: false }), {
      type: 'any',
      disable_parallel_tool_use: true,
    });
    assert.deepEqual(choice('auto', { parallel_tool_calls: true }), { type: 'auto' });
  });

  it('ignores tool_choice and parallel_tool_calls without tools, and names them', () => {
    const result = ok({ messages: [user('x')], tool_choice: 'auto', parallel_tool_calls: true, tools: [] });
    assert.equal(result.body.tools, undefined);
    assert.equal(result.body.tool_choice, undefined);
    assert.deepEqual(result.ignored, ['tool_choice', 'parallel_tool_calls']);
  });

  it('names the harmless fields it ignores (unknown ones too), never null ones or those it honours', () => {
    const { ignored, body } = ok({
      model: 'm',
      messages: [user('x')],
      seed: 7,
      presence_penalty: 0.5,
      frequency_penalty: 0,
      logit_bias: { '42': 1 },
      logprobs: false,
      top_logprobs: 0,
      store: false,
      metadata: { a: 'b' },
      service_tier: 'auto',
      reasoning_effort: 'low',
      response_format: { type: 'text' },
      n: 1,
      modalities: ['text'],
      some_future_field: {},
      prediction: null,
    });
    assert.deepEqual(ignored, [
      'seed',
      'presence_penalty',
      'frequency_penalty',
      'logit_bias',
      'logprobs',
      'top_logprobs',
      'store',
      'metadata',
      'service_tier',
      'reasoning_effort',
      'response_format',
      'some_future_field',
    ]);
    assert.deepEqual(Object.keys(body).sort(), ['max_tokens', 'messages', 'model', 'stream']);
  });

  it('refuses what would change the answer, naming each problem', () => {
    assert.deepEqual(problems({ messages: [user('x')], n: 2 }), [
      { param: 'n', message: 'only one choice per request is supported (n must be 1)' },
    ]);
    const all = problems({
      messages: [user('x')],
      logprobs: true,
      top_logprobs: 3,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } },
      audio: { voice: 'alloy', format: 'mp3' },
      modalities: ['text', 'audio'],
      functions: [{ name: 'f' }],
      web_search_options: {},
    });
    assert.deepEqual(
      all.map((p) => p.param),
      [
        'logprobs',
        'top_logprobs',
        'response_format',
        'modalities',
        'audio',
        'functions',
        'web_search_options',
      ],
    );
    assert.match(
      problems({ messages: [user('x')], response_format: { type: 'json_object' } })[0]?.message ?? '',
      /json_object/,
    );
  });

  it('refuses content it cannot carry, with the path of the part', () => {
    const params = (messages: unknown[]) => problems({ messages }).map((p) => p.param);
    assert.deepEqual(params([user([{ type: 'input_audio', input_audio: { data: 'x', format: 'wav' } }])]), [
      'messages[0].content[0]',
    ]);
    assert.deepEqual(params([user([{ type: 'image_url', image_url: { url: 'ftp://x/y.png' } }])]), [
      'messages[0].content[0].image_url.url',
    ]);
    assert.deepEqual(
      params([user([{ type: 'image_url', image_url: { url: 'data:image/png,notbase64' } }])]),
      ['messages[0].content[0].image_url.url'],
    );
    assert.deepEqual(
      params([
        { role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://x' } }] },
        user('x'),
      ]),
      ['messages[0].content[0]'],
    );
    assert.deepEqual(
      params([
        user('x'),
        {
          role: 'assistant',
          tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"a":' } }],
        },
      ]),
      ['messages[1].tool_calls[0].function.arguments'],
    );
    assert.deepEqual(
      params([
        user('x'),
        { role: 'assistant', tool_calls: [{ id: 'c', type: 'custom', custom: { name: 'f', input: '' } }] },
      ]),
      ['messages[1].tool_calls[0].type'],
    );
    assert.deepEqual(params([user('x'), { role: 'tool', content: 'r' }]), ['messages[1].tool_call_id']);
    assert.deepEqual(params([{ role: 'function', name: 'f', content: 'r' }, user('x')]), [
      'messages[0].role',
    ]);
    assert.deepEqual(params([{ role: 'user', content: null }]), ['messages[0].content']);
    assert.deepEqual(params([{ role: 'system', content: 'only a system prompt' }]), ['messages']);
    assert.deepEqual(
      problems({ messages: [user('x')], tools: [{ type: 'custom', custom: { name: 'c' } }] })[0]?.param,
      'tools[0].type',
    );
    assert.deepEqual(
      problems({
        messages: [user('x')],
        tools: [{ type: 'function', function: { name: 'f' } }],
        tool_choice: { type: 'allowed_tools' },
      })[0]?.param,
      'tool_choice',
    );
  });

  it('takes safety_identifier as the user id when user is absent', () => {
    assert.deepEqual(ok({ messages: [user('x')], safety_identifier: 'hash-1' }).body.metadata, {
      user_id: 'hash-1',
    });
  });
});

/** Feeds `sse` through SseDecoder into a ChunkTranslator, in pieces cut at `cuts`. */
function chunks(
  sse: Buffer,
  cuts: number[] = [],
  includeUsage = true,
): { out: string[]; failure: StreamFailure | null } {
  const out: string[] = [];
  let failure: StreamFailure | null = null;
  const translator = new ChunkTranslator((data) => out.push(data), NAMES, includeUsage);
  const decoder = new SseDecoder((name, data) => {
    failure ??= translator.onEvent(name, data);
  });
  let at = 0;
  for (const cut of [...cuts, sse.length]) {
    decoder.push(sse.subarray(at, cut));
    at = cut;
  }
  return { out, failure };
}

interface Chunk {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: {
    index: number;
    delta: {
      role?: string;
      content?: string;
      tool_calls?: {
        index: number;
        id?: string;
        type?: string;
        function: { name?: string; arguments: string };
      }[];
    };
    finish_reason: string | null;
  }[];
  usage?: Record<string, unknown>;
}

function parsed(out: string[]): Chunk[] {
  assert.equal(out.at(-1), '[DONE]');
  return out.slice(0, -1).map((data) => JSON.parse(data) as Chunk);
}

describe('ChunkTranslator: Messages events → chat.completion.chunk', () => {
  it('streams role, content pieces, finish, usage, then [DONE]', () => {
    const { out, failure } = chunks(TEXT_SSE);
    assert.equal(failure, null);
    const all = parsed(out);
    assert.deepEqual(all[0], {
      id: 'msg_01',
      object: 'chat.completion.chunk',
      created: NAMES.created,
      model: 'claude-sonnet-5',
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
    });
    assert.deepEqual(
      all.slice(1, 3).map((c) => c.choices[0]?.delta.content),
      ['Héllo, ', 'wörld 🌍\n"quoted"'],
    );
    assert.deepEqual(all[3]?.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]);
    assert.deepEqual(all[4], {
      id: 'msg_01',
      object: 'chat.completion.chunk',
      created: NAMES.created,
      model: 'claude-sonnet-5',
      choices: [],
      usage: {
        prompt_tokens: 16,
        completion_tokens: 6,
        total_tokens: 22,
        prompt_tokens_details: { cached_tokens: 3 },
      },
    });
    assert.equal(all.length, 5);
  });

  it('sends no usage chunk unless asked', () => {
    const all = parsed(chunks(TEXT_SSE, [], false).out);
    assert.equal(all.length, 4);
    assert.ok(all.every((c) => c.usage === undefined));
  });

  it('gives the same output however the bytes are split (every offset)', () => {
    for (const sse of [TEXT_SSE, TOOL_SSE]) {
      const whole = chunks(sse).out;
      for (let cut = 1; cut < sse.length; cut++)
        assert.deepEqual(chunks(sse, [cut]).out, whole, `split at ${cut}`);
    }
  });

  it('streams tool calls: index, id, type and name first, then the arguments piece by piece', () => {
    const whole = chunks(TOOL_SSE).out;
    const cuts = Array.from({ length: Math.floor(TOOL_SSE.length / 7) }, (_, i) => (i + 1) * 7);
    assert.deepEqual(chunks(TOOL_SSE, cuts).out, whole, 'split every 7 bytes');
    const all = parsed(whole);
    const calls = all.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    assert.deepEqual(calls[0], {
      index: 0,
      id: 'toolu_01A',
      type: 'function',
      function: { name: 'get_weather', arguments: '' },
    });
    assert.equal(
      calls.filter((c) => c.index === 0).length,
      5,
      'the first call and its four non-empty argument pieces',
    );
    const args = (index: number) =>
      calls
        .filter((c) => c.index === index)
        .map((c) => c.function.arguments)
        .join('');
    assert.deepEqual(JSON.parse(args(0)), { city: 'Paris', unit: '°C' });
    assert.deepEqual(calls.find((c) => c.index === 1 && c.id !== undefined)?.function.name, 'get_time');
    assert.deepEqual(JSON.parse(args(1)), { tz: 'Europe/Paris' });
    assert.equal(all.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'Checking the weather…');
    assert.equal(all.at(-2)?.choices[0]?.finish_reason, 'tool_calls');
    assert.deepEqual(all.at(-1)?.usage, {
      prompt_tokens: 550,
      completion_tokens: 42,
      total_tokens: 592,
      prompt_tokens_details: { cached_tokens: 400 },
    });
  });

  it('returns a mid-stream error or unparseable data as a failure, never a finish or [DONE]', () => {
    const start =
      'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1}}}\n\n';
    const error = chunks(
      Buffer.from(
        `${start}event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n`,
      ),
    );
    assert.deepEqual(error.failure, { type: 'overloaded_error', message: 'Overloaded' });
    assert.equal(error.out.length, 1);
    const bad = chunks(
      Buffer.from(
        `${start}event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x\n\n`,
      ),
    );
    assert.equal(bad.failure?.type, 'upstream_error');
    assert.ok(!bad.out.includes('[DONE]'));
    const notAnObject = chunks(Buffer.from(`${start}event: message_delta\ndata: null\n\n`));
    assert.equal(notAnObject.failure?.type, 'upstream_error');
  });

  it('ignores thinking, signatures and unknown events', () => {
    const sse =
      'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}\n\n' +
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}\n\n' +
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}\n\n' +
      'event: brand_new\ndata: {"type":"brand_new"}\n\n';
    assert.deepEqual(chunks(Buffer.from(sse)), { out: [], failure: null });
  });

  it('maps every stop reason', () => {
    const map = [
      'end_turn',
      'stop_sequence',
      'max_tokens',
      'tool_use',
      'refusal',
      'pause_turn',
      'model_context_window_exceeded',
      null,
    ].map(finishReason);
    assert.deepEqual(map, [
      'stop',
      'stop',
      'length',
      'tool_calls',
      'content_filter',
      'stop',
      'length',
      'stop',
    ]);
  });
});

describe('messageToCompletion and MessageAccumulator', () => {
  it('assembles a streamed message exactly as the non-streamed one, and translates it', () => {
    const accumulator = new MessageAccumulator();
    let failure: StreamFailure | null = null;
    const decoder = new SseDecoder((name, data) => {
      failure ??= accumulator.onEvent(name, data);
    });
    for (let at = 0; at < TOOL_SSE.length; at += 5) decoder.push(TOOL_SSE.subarray(at, at + 5));
    assert.equal(failure, null);
    assert.deepEqual(accumulator.message, {
      id: 'msg_tool_01',
      model: 'claude-sonnet-5',
      content: [
        { type: 'text', text: 'Checking the weather…' },
        { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris', unit: '°C' } },
        { type: 'tool_use', id: 'toolu_01B', name: 'get_time', input: { tz: 'Europe/Paris' } },
      ],
      stop_reason: 'tool_use',
      usage: {
        input_tokens: 120,
        output_tokens: 42,
        cache_creation_input_tokens: 30,
        cache_read_input_tokens: 400,
      },
    });
    assert.deepEqual(messageToCompletion(accumulator.message, NAMES), {
      id: 'msg_tool_01',
      object: 'chat.completion',
      created: NAMES.created,
      model: 'claude-sonnet-5',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'Checking the weather…',
            refusal: null,
            tool_calls: [
              {
                id: 'toolu_01A',
                type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"°C"}' },
              },
              {
                id: 'toolu_01B',
                type: 'function',
                function: { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
              },
            ],
          },
          logprobs: null,
          finish_reason: 'tool_calls',
        },
      ],
      usage: {
        prompt_tokens: 550,
        completion_tokens: 42,
        total_tokens: 592,
        prompt_tokens_details: { cached_tokens: 400 },
      },
    });
  });

  it('gives null content for tool calls alone, and skips thinking blocks', () => {
    const completion = messageToCompletion(
      {
        content: [{ type: 'thinking' }, { type: 'tool_use', id: 't', name: 'f', input: {} }],
        stop_reason: 'tool_use',
      },
      NAMES,
    );
    assert.equal(completion.id, NAMES.id);
    assert.equal(completion.model, NAMES.model);
    assert.equal(completion.choices[0]?.message.content, null);
    assert.equal(messageToCompletion({ content: [] }, NAMES).choices[0]?.message.content, '');
  });

  it('fails on an error event and on tool input that is not JSON', () => {
    const accumulator = new MessageAccumulator();
    assert.deepEqual(
      accumulator.onEvent('error', '{"type":"error","error":{"type":"api_error","message":"boom"}}'),
      { type: 'api_error', message: 'boom' },
    );
    accumulator.onEvent(
      'content_block_start',
      '{"index":0,"content_block":{"type":"tool_use","id":"t","name":"f"}}',
    );
    accumulator.onEvent(
      'content_block_delta',
      '{"index":0,"delta":{"type":"input_json_delta","partial_json":"{\\"a\\":"}}',
    );
    assert.equal(accumulator.onEvent('content_block_stop', '{"index":0}')?.type, 'upstream_error');
    assert.equal(new MessageAccumulator().onEvent('message_start', '{')?.type, 'upstream_error');
  });
});

describe('models, errors and the ignored-fields header', () => {
  it("maps the Anthropic model list to OpenAI's", () => {
    assert.deepEqual(
      anthropicModelsToOpenAI({
        data: [
          {
            type: 'model',
            id: 'claude-sonnet-5',
            display_name: 'Claude Sonnet 5',
            created_at: '2025-11-24T00:00:00Z',
          },
          { id: 'no-date' },
          { display_name: 'no id' },
        ],
        has_more: false,
      }),
      {
        object: 'list',
        data: [
          { id: 'claude-sonnet-5', object: 'model', created: 1763942400, owned_by: 'anthropic' },
          { id: 'no-date', object: 'model', created: 0, owned_by: 'anthropic' },
        ],
      },
    );
    assert.deepEqual(anthropicModelsToOpenAI(null), { object: 'list', data: [] });
  });

  it("renders errors in OpenAI's shape with our type as code", () => {
    assert.deepEqual(openAIErrorBody('rate_limit_error', 'slow down'), {
      error: { message: 'slow down', type: 'rate_limit_error', param: null, code: 'rate_limit_error' },
    });
    assert.equal(openAIErrorBody('invalid_request_error', 'x', 'n').error.param, 'n');
    assert.equal(openAIErrorBody('upstream_authentication_error', 'x').error.type, 'authentication_error');
    for (const type of [
      'overloaded_error',
      'upstream_timeout',
      'stream_incomplete',
      'api_error',
      'constructor',
    ]) {
      assert.equal(openAIErrorBody(type, 'x').error.type, 'server_error', type);
    }
  });

  it('lists only header-safe names, at most 20', () => {
    assert.deepEqual(ignoredFieldsHeader([]), {});
    assert.deepEqual(ignoredFieldsHeader(['seed', 'bad\nname', 'ünï', 'tools[].function.strict']), {
      'x-ignored-fields': 'seed, tools[].function.strict',
    });
    assert.equal(
      ignoredFieldsHeader(Array.from({ length: 30 }, (_, i) => `f${i}`))['x-ignored-fields']?.split(', ')
        .length,
      20,
    );
  });
});
