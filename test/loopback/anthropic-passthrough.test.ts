import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { requestLogs, SECRET_KEY, startHarness, type Harness } from '../helpers/harness.ts';
import { closedWithin, within } from '../helpers/wait.ts';

const MESSAGE = {
  model: 'claude-sonnet-5',
  max_tokens: 64,
  messages: [{ role: 'user' as const, content: 'Hello' }],
};

async function rawPost(
  url: string,
  body: string,
): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'anthropic-version': '2023-06-01',
      'x-api-key': 'whatever',
    },
    body,
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

describe('Anthropic-native /v1/messages passthrough, with the official SDK', () => {
  let h: Harness;
  let client: Anthropic;
  before(async () => {
    h = await startHarness({ MAX_RETRIES: '2', UPSTREAM_READ_TIMEOUT: '1' });
    client = new Anthropic({ baseURL: h.url, apiKey: 'client-key-not-forwarded' });
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
  });

  it('streams text through the SDK', async () => {
    h.fake.queue({ kind: 'message', deltas: ['Hi ', 'there', '!'] });
    const stream = client.messages.stream(MESSAGE);
    const message = await stream.finalMessage();
    assert.deepEqual(
      message.content,
      [{ type: 'text', text: 'Hi there!', citations: null }].map(({ type, text }) => ({ type, text })),
    );
    assert.equal(message.stop_reason, 'end_turn');
  });

  it('answers non-streamed requests', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: ['Plain ', 'answer'],
      usage: { input_tokens: 9, cache_read_input_tokens: 4 },
    });
    const message = await client.messages.create(MESSAGE);
    assert.equal(message.content[0]?.type === 'text' ? message.content[0].text : '', 'Plain answer');
    assert.equal(message.usage.input_tokens, 9);
    assert.equal(message.usage.cache_read_input_tokens, 4);
  });

  it('relays the upstream stream byte for byte (only ids differ between two calls)', async () => {
    const scenario = {
      kind: 'message' as const,
      deltas: ['a', ' "quoted"', ' ünïcode 🌍', '\n'],
      spacedJson: true,
    };
    const body = JSON.stringify({ ...MESSAGE, stream: true });
    h.fake.queue(scenario, scenario);
    const direct = await fetch(`${h.fake.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-api-key': 'k' },
      body,
    });
    const directText = await direct.text();
    const relayed = await rawPost(h.url, body);
    const normalise = (s: string) => s.replace(/msg_fake_\d+/g, 'msg');
    assert.equal(normalise(relayed.text), normalise(directText));
    assert.match(relayed.text, /"type": "content_block_delta"/, 'spaced JSON was re-encoded');
  });

  it('sends the request body upstream byte for byte, unknown fields and spacing included', async () => {
    const body = `{ "model": "claude-sonnet-5",  "max_tokens": 8, "future_field": {"x": [1, 2.50, "\\u00e9"]},
      "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}] }`;
    await rawPost(h.url, body);
    assert.equal(h.fake.requests[0]?.body.toString('utf8'), body);
  });

  it('uses the service key upstream, passes anthropic-version and anthropic-beta, returns request-id', async () => {
    const res = await client.messages
      .create(MESSAGE, {
        headers: { 'anthropic-beta': 'fancy-feature-2026-01-01', 'anthropic-version': '2099-01-01' },
      })
      .withResponse();
    const received = h.fake.requests[0];
    assert.ok(received);
    assert.equal(received.headers['x-api-key'], SECRET_KEY);
    assert.equal(received.headers.authorization, undefined);
    assert.equal(received.headers['anthropic-beta'], 'fancy-feature-2026-01-01');
    assert.equal(received.headers['anthropic-version'], '2099-01-01');
    assert.match(res.response.headers.get('request-id') ?? '', /^req_/);
    assert.ok(res.response.headers.get('x-request-id'));
  });

  it('round-trips a tool call', async () => {
    h.fake.queue({
      kind: 'message',
      blocks: [
        { type: 'tool_use', id: 'toolu_01', name: 'get_weather', inputJson: ['{"ci', 'ty": "Pa', 'ris"}'] },
      ],
    });
    const tools = [
      {
        name: 'get_weather',
        description: 'Weather',
        input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } },
      },
    ];
    const first = await client.messages.stream({ ...MESSAGE, tools }).finalMessage();
    assert.equal(first.stop_reason, 'tool_use');
    const call = first.content.find((b) => b.type === 'tool_use');
    assert.ok(call?.type === 'tool_use');
    assert.deepEqual(call.input, { city: 'Paris' });
    h.fake.queue({ kind: 'message', deltas: ['Sunny.'] });
    const second = await client.messages.create({
      ...MESSAGE,
      tools,
      messages: [
        ...MESSAGE.messages,
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '21 °C' }] },
      ],
    });
    assert.equal(second.content[0]?.type === 'text' ? second.content[0].text : '', 'Sunny.');
    const sent = h.fake.requests[1]?.json as { messages: { content: unknown }[] };
    assert.deepEqual(sent.messages[2]?.content, [
      { type: 'tool_result', tool_use_id: 'toolu_01', content: '21 °C' },
    ]);
  });

  it('delivers a thinking block with its signature byte-identical', async () => {
    const signature = 'EqQBCkgIARABGAIiQL+/9z/sig==+with/odd\\chars"';
    h.fake.queue({
      kind: 'message',
      blocks: [
        { type: 'thinking', thinking: ['Let me ', 'think.'], signature },
        { type: 'text', text: ['42'] },
      ],
    });
    const message = await client.messages.stream(MESSAGE).finalMessage();
    const thinking = message.content[0];
    assert.ok(thinking?.type === 'thinking');
    assert.equal(thinking.thinking, 'Let me think.');
    assert.equal(thinking.signature, signature);
  });

  for (const [status, ErrorClass, expectedCalls] of [
    [429, Anthropic.RateLimitError, 3],
    [529, Anthropic.InternalServerError, 3],
  ] as const) {
    it(`upstream ${status} surfaces as ${ErrorClass.name}, retried by the service only (${expectedCalls} upstream calls)`, async () => {
      h.fake.setScenario(() => ({ kind: 'error', status, retryAfterMs: '20' }));
      const sdk = new Anthropic({ baseURL: h.url, apiKey: 'k', maxRetries: 2 });
      await assert.rejects(sdk.messages.create(MESSAGE), (error: unknown) => {
        assert.ok(error instanceof ErrorClass, String(error));
        assert.equal((error as InstanceType<typeof Anthropic.APIError>).status, status);
        return true;
      });
      assert.equal(h.fake.requests.length, expectedCalls);
    });
  }

  for (const status of [401, 403]) {
    it(`upstream ${status} (the service's own key refused) → 502 api_error naming the credentials, not retried by the SDK`, async () => {
      h.fake.setScenario(() => ({ kind: 'error', status, message: `bad key ${SECRET_KEY}` }));
      const sdk = new Anthropic({ baseURL: h.url, apiKey: 'k', maxRetries: 2 });
      const error = await sdk.messages.create(MESSAGE).catch((e: unknown) => e);
      assert.ok(error instanceof Anthropic.InternalServerError, String(error));
      assert.equal(error.status, 502);
      assert.equal((error.error as { error?: { type?: string } }).error?.type, 'api_error');
      assert.match(error.message, /credentials/);
      assert.ok(!error.message.includes(SECRET_KEY));
      assert.equal(error.headers.get('x-should-retry'), 'false');
      assert.equal(h.fake.requests.length, 1, 'one upstream call: neither the service nor the SDK retries');
      const id = error.headers.get('x-request-id');
      const line = await within(
        (async () => {
          for (;;) {
            const found = requestLogs(h).find((l) => l.reqId === id);
            if (found) return found;
            await new Promise((resolve) => setImmediate(resolve));
          }
        })(),
        5000,
        'the request log line',
      );
      assert.equal(line.outcome, 'upstream_error');
      assert.equal(line.error_type, 'upstream_authentication_error');
    });
  }

  it("answers its own errors in Anthropic's shape (bad JSON → invalid_request_error)", async () => {
    const res = await rawPost(h.url, '{"model": ');
    assert.equal(res.status, 400);
    assert.deepEqual(Object.keys(JSON.parse(res.text) as object), ['type', 'error', 'request_id']);
    assert.match(res.text, /"type":"invalid_request_error"/);
    assert.equal(h.fake.requests.length, 0);
  });

  it('an SDK abort closes the upstream request', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 40 }, (_, i) => `w${i} `),
      deltaDelayMs: 50,
    });
    const stream = client.messages.stream(MESSAGE);
    const finished = stream.finalMessage().then(
      () => 'completed',
      (error: unknown) => (error instanceof Anthropic.APIUserAbortError ? 'aborted' : String(error)),
    );
    await new Promise<void>((resolve) => {
      stream.once('text', () => {
        resolve();
      });
    });
    stream.abort();
    assert.equal(await finished, 'aborted');
    await closedWithin(h.fake.requests[0], 1000);
  });

  for (const fault of [
    { type: 'cut', afterDeltas: 1 },
    { type: 'stall', afterDeltas: 1 },
    { type: 'truncate', afterDeltas: 1 },
  ] as const) {
    it(`a mid-stream ${fault.type} makes the SDK's stream throw, never end quietly`, async () => {
      h.fake.queue({ kind: 'message', deltas: ['one ', 'two ', 'three'], fault });
      await assert.rejects(client.messages.stream(MESSAGE).finalMessage(), (error: unknown) => {
        assert.ok(error instanceof Error);
        return true;
      });
    });
  }

  for (const [fault, type] of [
    [{ type: 'truncate', afterDeltas: 1 }, 'api_error'],
    [{ type: 'stall', afterDeltas: 1 }, 'timeout_error'],
  ] as const) {
    it(`appends an Anthropic error event after a ${fault.type}`, async () => {
      h.fake.queue({ kind: 'message', deltas: ['one ', 'two'], fault });
      const res = await rawPost(h.url, JSON.stringify({ ...MESSAGE, stream: true }));
      const tail = res.text.trimEnd().split('\n\n').at(-1) ?? '';
      assert.match(tail, /^event: error\ndata: /);
      const data = JSON.parse(tail.split('data: ')[1] ?? '') as { type: string; error: { type: string } };
      assert.equal(data.type, 'error');
      assert.equal(data.error.type, type);
      assert.doesNotMatch(res.text, /message_stop/);
    });
  }

  it('relays count_tokens and the model list', async () => {
    const count = await client.messages.countTokens({ model: 'claude-sonnet-5', messages: MESSAGE.messages });
    assert.equal(typeof count.input_tokens, 'number');
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === 'claude-sonnet-5'));
    const one = await client.models.retrieve('claude-opus-5');
    assert.equal(one.id, 'claude-opus-5');
  });
});
