import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import { requestLogOf, SECRET_KEY, startHarness, type Harness } from '../helpers/harness.ts';
import { closedWithin, upstreamRequest } from '../helpers/wait.ts';

const MODEL = 'claude-sonnet-5';
const HI: ChatCompletionMessageParam[] = [{ role: 'user', content: 'Hi' }];

interface OpenAIErrorJson {
  error: { message: string; type: string; param: string | null; code: string };
}

function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The `data:` payloads of an OpenAI-style SSE body, in order. */
function dataLines(text: string): string[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice(6));
}

function upstreamJson(h: Harness, n = 0): Record<string, unknown> {
  const request = h.fake.requests[n];
  assert.ok(request, `upstream request ${n} missing`);
  return request.json as Record<string, unknown>;
}

const WEATHER_TOOL: ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

describe('OpenAI-compatible /v1/chat/completions, with the official openai SDK', () => {
  let h: Harness;
  let client: OpenAI;
  before(async () => {
    h = await startHarness({ MAX_RETRIES: '2' });
    // The SDK's default retries (2) stay on: the service's x-should-retry must keep them from multiplying.
    client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'client-key-not-forwarded' });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
    h.logs.length = 0;
  });

  it('answers a non-streamed request with a chat.completion, usage with cached tokens', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: ['Hello', ' world'],
      usage: {
        input_tokens: 10,
        output_tokens: 2,
        cache_read_input_tokens: 5,
        cache_creation_input_tokens: 3,
      },
    });
    const completion = await client.chat.completions.create(
      {
        model: MODEL,
        messages: [
          { role: 'system', content: 'Be terse.' },
          { role: 'developer', content: 'No emoji.' },
          ...HI,
        ],
        max_completion_tokens: 77,
        temperature: 1.5,
        stop: 'END',
        safety_identifier: 'u-1',
      },
      { headers: { 'x-request-id': 'openai-plain' } },
    );
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, MODEL);
    assert.match(completion.id, /^msg_fake_/);
    assert.deepEqual(completion.choices, [
      {
        index: 0,
        message: { role: 'assistant', content: 'Hello world', refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ]);
    assert.deepEqual(completion.usage, {
      prompt_tokens: 18,
      completion_tokens: 2,
      total_tokens: 20,
      prompt_tokens_details: { cached_tokens: 5 },
    });
    const sent = h.fake.requests[0];
    assert.ok(sent);
    assert.equal(sent.headers['x-api-key'], SECRET_KEY);
    assert.equal(sent.headers.authorization, undefined);
    assert.deepEqual(upstreamJson(h), {
      model: MODEL,
      max_tokens: 77,
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      system: 'Be terse.\n\nNo emoji.',
      temperature: 1,
      stop_sequences: ['END'],
      metadata: { user_id: 'u-1' },
    });
    const line = await requestLogOf(h, 'openai-plain');
    assert.equal(line.route, '/v1/chat/completions');
    assert.equal(line.model, MODEL);
    assert.equal(line.attempts, 1);
    assert.equal(line.input_tokens, 10);
    assert.equal(line.stop_reason, 'end_turn');
  });

  it('streams chunks: role first, content pieces, finish_reason, the include_usage chunk', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: ['Bonjour', ', ', 'monde 🌍'],
      usage: { input_tokens: 7, output_tokens: 3, cache_read_input_tokens: 4 },
    });
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: HI,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.deepEqual(chunks[0]?.choices[0]?.delta, { role: 'assistant', content: '' });
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'Bonjour, monde 🌍');
    assert.ok(chunks.every((c) => c.id === chunks[0]?.id));
    assert.equal(chunks.at(-2)?.choices[0]?.finish_reason, 'stop');
    assert.deepEqual(chunks.at(-1)?.choices, []);
    assert.deepEqual(chunks.at(-1)?.usage, {
      prompt_tokens: 11,
      completion_tokens: 3,
      total_tokens: 14,
      prompt_tokens_details: { cached_tokens: 4 },
    });
    assert.equal(upstreamJson(h).stream, true);
  });

  it('ends the raw stream with data: [DONE], in OpenAI framing (no event names)', async () => {
    h.fake.queue({ kind: 'message', deltas: ['a', 'b'] });
    const res = await post(h.url, { model: MODEL, messages: HI, stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.ok(res.headers.get('x-request-id'));
    const text = await res.text();
    assert.doesNotMatch(text, /^event:/m);
    const lines = dataLines(text);
    assert.equal(lines.at(-1), '[DONE]');
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    assert.equal(lines.filter((l) => l === '[DONE]').length, 1);
    assert.equal((JSON.parse(lines.at(-2) ?? '{}') as ChatCompletionChunk).choices[0]?.finish_reason, 'stop');
  });

  it('round-trips a tool call: streamed arguments in many pieces, then the tool result goes upstream as tool_result', async () => {
    const pieces = ['{"', 'ci', 'ty', '": ', '"Pa', 'ris', ' (', 'Fr', 'an', 'ce)', '"}'];
    h.fake.queue({
      kind: 'message',
      blocks: [
        { type: 'text', text: ['Let me ', 'check.'] },
        { type: 'tool_use', id: 'toolu_w1', name: 'get_weather', inputJson: pieces },
      ],
    });
    const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Paris?' }];
    const stream = client.chat.completions.stream({
      model: MODEL,
      messages,
      tools: [WEATHER_TOOL],
      tool_choice: 'auto',
    });
    let argumentPieces = 0;
    stream.on('chunk', (chunk) => {
      if (chunk.choices[0]?.delta.tool_calls?.[0]?.function?.arguments) argumentPieces++;
    });
    const final = await stream.finalChatCompletion();
    assert.equal(argumentPieces, pieces.length);
    const choice = final.choices[0];
    assert.equal(choice?.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, 'Let me check.');
    const call = choice.message.tool_calls?.[0];
    assert.ok(call?.type === 'function');
    assert.equal(call.id, 'toolu_w1');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris (France)' });
    const first = upstreamJson(h, 0);
    assert.deepEqual(first.tools, [
      { name: 'get_weather', description: 'Current weather', input_schema: WEATHER_TOOL.function.parameters },
    ]);
    assert.deepEqual(first.tool_choice, { type: 'auto' });

    h.fake.queue({ kind: 'message', deltas: ['It is 18 °C.'] });
    const answer = await client.chat.completions.create({
      model: MODEL,
      tools: [WEATHER_TOOL],
      messages: [
        ...messages,
        choice.message,
        { role: 'tool', tool_call_id: call.id, content: '{"temp_c": 18}' },
      ],
    });
    assert.equal(answer.choices[0]?.message.content, 'It is 18 °C.');
    assert.deepEqual((upstreamJson(h, 1).messages as unknown[]).slice(1), [
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_w1', name: 'get_weather', input: { city: 'Paris (France)' } },
        ],
      },
      {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: 'toolu_w1', content: '{"temp_c": 18}' }],
      },
    ]);
  });

  it('answers a tool call without streaming too', async () => {
    h.fake.queue({
      kind: 'message',
      blocks: [{ type: 'tool_use', id: 'toolu_2', name: 'get_weather', inputJson: ['{"city":', ' "Oslo"}'] }],
      usage: { cache_read_input_tokens: 9 },
    });
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: HI,
      tools: [WEATHER_TOOL],
      tool_choice: 'required',
      parallel_tool_calls: false,
    });
    const choice = completion.choices[0];
    assert.ok(choice);
    assert.equal(choice.message.content, null);
    assert.equal(choice.finish_reason, 'tool_calls');
    const call = choice.message.tool_calls?.[0];
    assert.ok(call?.type === 'function');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Oslo' });
    assert.equal(completion.usage?.prompt_tokens_details?.cached_tokens, 9);
    assert.deepEqual(upstreamJson(h).tool_choice, { type: 'any', disable_parallel_tool_use: true });
  });

  it('sends image parts upstream as image blocks', async () => {
    await client.chat.completions.create({
      model: MODEL,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
        },
      ],
    });
    assert.deepEqual(upstreamJson(h).messages, [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is this?' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
        ],
      },
    ]);
  });

  it('lists ignored fields in x-ignored-fields and leaves them out upstream', async () => {
    const { data, response } = await client.chat.completions
      .create({
        model: MODEL,
        messages: HI,
        presence_penalty: 0.5,
        logprobs: false,
        store: false,
        prompt_cache_key: 'k',
      })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(
      response.headers.get('x-ignored-fields'),
      'presence_penalty, logprobs, store, prompt_cache_key',
    );
    assert.deepEqual(Object.keys(upstreamJson(h)).sort(), ['max_tokens', 'messages', 'model', 'stream']);
    const streamed = await post(h.url, { model: MODEL, messages: HI, stream: true, seed: 1 });
    assert.equal(streamed.headers.get('x-ignored-fields'), 'seed');
    await streamed.text();
  });

  it("400 for n: 2, in OpenAI's error shape, without calling the upstream", async () => {
    const error = await client.chat.completions.create({ model: MODEL, messages: HI, n: 2 }).then(
      () => assert.fail('no error'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.status, 400);
    assert.equal(error.type, 'invalid_request_error');
    assert.equal(error.code, 'invalid_request_error');
    assert.equal(error.param, 'n');
    assert.match(error.message, /^400 n: only one choice per request is supported/);
    assert.equal(h.fake.requests.length, 0);
  });

  it("renders the framework's own errors in OpenAI's shape too", async () => {
    const cases: [string, Response, number][] = [
      ['bad JSON', await post(h.url, '{"messages": '), 400],
      ['missing messages', await post(h.url, { model: MODEL }), 400],
      ['wrong type', await post(h.url, { messages: HI, temperature: 'hot' }), 400],
      ['not JSON', await post(h.url, 'hi', { 'content-type': 'text/plain' }), 415],
    ];
    for (const [label, res, status] of cases) {
      assert.equal(res.status, status, label);
      const body = (await res.json()) as OpenAIErrorJson;
      assert.equal(body.error.type, 'invalid_request_error', label);
      assert.equal(typeof body.error.message, 'string', label);
      assert.ok('param' in body.error && 'code' in body.error, label);
    }
    assert.equal(h.fake.requests.length, 0);
  });

  it("upstream 429 → RateLimitError with Retry-After; the retries are the service's only", async () => {
    h.fake.setScenario(() => ({ kind: 'error', status: 429, retryAfterMs: '10' }));
    const error = await client.chat.completions
      .create({ model: MODEL, messages: HI })
      .catch((e: unknown) => e);
    assert.ok(error instanceof OpenAI.RateLimitError);
    assert.equal(error.code, 'rate_limit_error');
    assert.equal(error.headers.get('x-should-retry'), 'false');
    assert.match(error.headers.get('retry-after') ?? '', /^\d+$/);
    assert.equal(h.fake.requests.length, 3, 'one attempt and MAX_RETRIES=2 retries, none added by the SDK');
  });

  it('upstream 529 → InternalServerError (503 overloaded_error), not retried again by the SDK', async () => {
    h.fake.setScenario(() => ({ kind: 'error', status: 529, retryAfterMs: '10' }));
    const error = await client.chat.completions
      .create({ model: MODEL, messages: HI, stream: true })
      .catch((e: unknown) => e);
    assert.ok(error instanceof OpenAI.InternalServerError);
    assert.equal(error.status, 503);
    assert.equal(error.type, 'server_error');
    assert.equal(error.code, 'overloaded_error');
    assert.equal(h.fake.requests.length, 3);
  });

  it("upstream 401 → 502 naming the service's credentials; one upstream call in all", async () => {
    h.fake.queue({ kind: 'error', status: 401, message: `bad key ${SECRET_KEY}` });
    const error = await client.chat.completions
      .create({ model: MODEL, messages: HI })
      .catch((e: unknown) => e);
    assert.ok(error instanceof OpenAI.InternalServerError);
    assert.equal(error.status, 502);
    assert.equal(error.type, 'authentication_error');
    assert.equal(error.code, 'upstream_authentication_error');
    assert.match(error.message, /credentials/);
    assert.ok(!error.message.includes(SECRET_KEY));
    assert.equal(h.fake.requests.length, 1);
  });

  it("a mid-stream upstream failure makes the SDK's iteration throw; the raw stream has no [DONE]", async () => {
    h.fake.queue({
      kind: 'message',
      deltas: ['one ', 'two ', 'three'],
      fault: { type: 'error', afterDeltas: 2, errorType: 'overloaded_error', message: 'Overloaded' },
    });
    const stream = await client.chat.completions.create({ model: MODEL, messages: HI, stream: true });
    let text = '';
    const error = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    })().catch((e: unknown) => e);
    assert.ok(error instanceof OpenAI.APIError, String(error));
    assert.match(error.message, /Overloaded/);
    assert.equal(text, 'one two ');

    h.fake.queue({ kind: 'message', deltas: ['one ', 'two'], fault: { type: 'cut', afterDeltas: 1 } });
    const raw = dataLines(await (await post(h.url, { model: MODEL, messages: HI, stream: true })).text());
    assert.ok(!raw.includes('[DONE]'));
    const last = JSON.parse(raw.at(-1) ?? '{}') as OpenAIErrorJson;
    assert.equal(last.error.code, 'stream_incomplete');
    assert.equal(last.error.type, 'server_error');
    assert.ok(raw.every((l) => !l.includes('"finish_reason":"stop"')));
  });

  it("a broken answer to a non-streamed request → 502 in OpenAI's shape, never a partial completion", async () => {
    h.fake.queue({ kind: 'message', deltas: ['a ', 'b'], fault: { type: 'truncate', afterDeltas: 1 } });
    const res = await post(h.url, { model: MODEL, messages: HI });
    assert.equal(res.status, 502);
    assert.equal(res.headers.get('x-should-retry'), 'false');
    assert.equal(((await res.json()) as OpenAIErrorJson).error.code, 'upstream_error');
  });

  it('closes the upstream request when the client aborts through the SDK', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 50 }, (_, i) => `w${i} `),
      deltaDelayMs: 50,
    });
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: HI, stream: true },
      { signal: controller.signal },
    );
    let seen = 0;
    // The SDK ends the iteration quietly when its signal aborts (after the chunks it had already read:
    // on a busy machine the next delta can arrive in the same read).
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) seen++;
      if (seen === 2) controller.abort();
    }
    assert.ok(seen >= 2 && seen < 50, `${seen} deltas seen`);
    await closedWithin(h.fake.requests[0], 1000);
  });

  it('closes the upstream request when a non-streamed request is aborted', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 50 }, (_, i) => `w${i} `),
      deltaDelayMs: 50,
    });
    const controller = new AbortController();
    const pending = client.chat.completions
      .create({ model: MODEL, messages: HI }, { signal: controller.signal })
      .catch((e: unknown) => e);
    const answering = await upstreamRequest(h.fake);
    controller.abort();
    assert.ok((await pending) instanceof OpenAI.APIUserAbortError);
    await closedWithin(answering, 1000);
  });
  it('lists models in OpenAI shape on the same /v1/models path the Anthropic SDK uses', async () => {
    const models = await client.models.list();
    const ids = models.data.map((m) => m.id);
    assert.ok(ids.includes('claude-sonnet-5'), ids.join(','));
    assert.ok(
      models.data.every(
        (m) => (m.object as string) === 'model' && m.owned_by === 'anthropic' && m.created > 0,
      ),
    );
    const one = await client.models.retrieve('claude-opus-5');
    assert.deepEqual([one.id, one.object], ['claude-opus-5', 'model']);
  });
});
