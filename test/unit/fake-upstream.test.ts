import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DEFAULT_MAX_RECORDED, startFakeUpstream } from '../../src/mock/fake-upstream.ts';
import type { FakeBlock, FakeUpstream, RecordedRequest } from '../../src/mock/fake-upstream.ts';
import { upstreamRequest, within } from '../helpers/wait.ts';

interface SseEvent {
  event: string;
  data: string;
}

const HEADERS = {
  'x-api-key': 'test-key',
  'anthropic-version': '2023-06-01',
  'content-type': 'application/json',
};

function body(text: string, stream: boolean, model = 'claude-sonnet-5'): Record<string, unknown> {
  return { model, max_tokens: 256, stream, messages: [{ role: 'user', content: text }] };
}

function post(
  fake: FakeUpstream,
  payload: unknown,
  init: { headers?: Record<string, string>; signal?: AbortSignal; path?: string } = {},
): Promise<Response> {
  const requestInit: RequestInit = {
    method: 'POST',
    headers: init.headers ?? HEADERS,
    body: JSON.stringify(payload),
  };
  if (init.signal !== undefined) requestInit.signal = init.signal;
  return fetch(`${fake.url}${init.path ?? '/v1/messages'}`, requestInit);
}

function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const raw of text.split('\n\n')) {
    if (raw === '') continue;
    const lines = raw.split('\n');
    const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? '';
    const data = lines.find((l) => l.startsWith('data: '))?.slice(6) ?? '';
    events.push({ event, data });
  }
  return events;
}

function json(e: SseEvent): Record<string, unknown> {
  return JSON.parse(e.data) as Record<string, unknown>;
}

function deltaField(e: SseEvent, field: string): unknown {
  const delta = json(e).delta as Record<string, unknown>;
  return delta[field];
}

function names(events: SseEvent[]): string[] {
  return events.map((e) => e.event);
}

async function readUntil(res: Response, done: (text: string) => boolean): Promise<string> {
  assert.ok(res.body);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!done(text)) {
    const chunk = await reader.read();
    if (chunk.done) break;
    text += decoder.decode(chunk.value as Uint8Array, { stream: true });
  }
  reader.releaseLock();
  return text;
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

function lastRequest(fake: FakeUpstream): RecordedRequest {
  const rec = fake.requests.at(-1);
  assert.ok(rec, 'a request was recorded');
  return rec;
}

void describe('fake upstream', () => {
  let fake: FakeUpstream;

  before(async () => {
    fake = await startFakeUpstream();
  });
  beforeEach(() => {
    fake.reset();
  });
  after(async () => {
    await fake.close();
  });

  void it('streams events in the documented order and the deltas join to the echo', async () => {
    const res = await post(fake, body('hello there world', true));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.match(res.headers.get('request-id') ?? '', /^req_/);
    const events = parseSse(await res.text());
    const deltas = events.filter((e) => e.event === 'content_block_delta');
    assert.deepEqual(names(events), [
      'message_start',
      'ping',
      'content_block_start',
      ...deltas.map(() => 'content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    for (const e of events) if (e.event !== 'ping') assert.equal(json(e).type, e.event);
    assert.equal(events[1]?.data, '{"type": "ping"}');
    assert.equal(deltas.map((e) => deltaField(e, 'text')).join(''), 'You said: hello there world');
    const start = json(events[0] ?? { event: '', data: '{}' }).message as Record<string, unknown>;
    assert.equal(start.model, 'claude-sonnet-5');
    assert.match(String(start.id), /^msg_fake_\d+$/);
    assert.deepEqual(start.content, []);
    const messageDelta = json(events.at(-2) ?? { event: '', data: '{}' });
    assert.deepEqual(messageDelta.delta, { stop_reason: 'end_turn', stop_sequence: null });
    assert.deepEqual(messageDelta.usage, { output_tokens: deltas.length });
    const rec = lastRequest(fake);
    await within(rec.closed, 1000, 'closed');
    assert.equal(rec.closedEarly, false);
    assert.equal(typeof rec.finishedAt, 'number');
  });

  void it('answers non-streaming requests with a JSON message', async () => {
    const res = await post(fake, body('ping?', false, 'claude-haiku-4-5'));
    assert.equal(res.status, 200);
    const msg = (await res.json()) as Record<string, unknown>;
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'claude-haiku-4-5');
    assert.deepEqual(msg.content, [{ type: 'text', text: 'You said: ping?' }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.stop_sequence, null);
    assert.deepEqual(Object.keys(msg.usage as object).sort(), [
      'cache_creation_input_tokens',
      'cache_read_input_tokens',
      'input_tokens',
      'output_tokens',
    ]);
  });

  void it('validates keys, version, body and model like the real API', async () => {
    const noKey = await post(fake, body('x', false), { headers: { 'anthropic-version': '2023-06-01' } });
    assert.equal(noKey.status, 401);
    const err = (await noKey.json()) as { type: string; error: { type: string }; request_id: string };
    assert.equal(err.type, 'error');
    assert.equal(err.error.type, 'authentication_error');
    assert.match(err.request_id, /^req_/);
    assert.equal(noKey.headers.get('request-id'), err.request_id);
    const badKey = await post(fake, body('x', false), { headers: { ...HEADERS, 'x-api-key': 'bad-key' } });
    assert.equal(badKey.status, 401);
    const noVersion = await post(fake, body('x', false), { headers: { 'x-api-key': 'k' } });
    assert.equal(noVersion.status, 400);
    const noMax = await post(fake, { model: 'claude-sonnet-5', messages: [] });
    assert.equal(noMax.status, 400);
    const notJson = await fetch(`${fake.url}/v1/messages`, { method: 'POST', headers: HEADERS, body: '{' });
    assert.equal(notJson.status, 400);
    const badModel = await post(fake, body('x', false, 'claude-does-not-exist'));
    assert.equal(badModel.status, 404);
    assert.equal(((await badModel.json()) as { error: { type: string } }).error.type, 'not_found_error');
    await Promise.all([badKey, noVersion, noMax, notJson].map((r) => r.text()));
  });

  void it('serves count_tokens, models and 404s', async () => {
    const counted = await post(fake, body('a'.repeat(40), false), { path: '/v1/messages/count_tokens' });
    const { input_tokens } = (await counted.json()) as { input_tokens: number };
    assert.ok(input_tokens >= 10 && input_tokens <= 12);
    const list = (await (await fetch(`${fake.url}/v1/models`, { headers: HEADERS })).json()) as {
      data: { id: string }[];
      has_more: boolean;
    };
    assert.deepEqual(
      list.data.map((m) => m.id),
      ['claude-sonnet-5', 'claude-opus-5', 'claude-haiku-4-5'],
    );
    assert.equal(list.has_more, false);
    const one = await fetch(`${fake.url}/v1/models/claude-opus-5`, { headers: HEADERS });
    assert.equal(((await one.json()) as { id: string }).id, 'claude-opus-5');
    const missing = await fetch(`${fake.url}/v1/models/nope`, { headers: HEADERS });
    assert.equal(missing.status, 404);
    const unknown = await fetch(`${fake.url}/v1/nothing`, { headers: HEADERS });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { type: string } }).error.type, 'not_found_error');
    await missing.body?.cancel();
  });

  void it('sends error scenarios with retry headers and runs the queue in order', async () => {
    fake.queue(
      { kind: 'error', status: 529, retryAfter: '2', retryAfterMs: '1500', shouldRetry: true },
      { kind: 'error', status: 429 },
      { kind: 'message', deltas: ['third'] },
    );
    const first = await post(fake, body('x', true));
    assert.equal(first.status, 529);
    assert.equal(first.headers.get('retry-after'), '2');
    assert.equal(first.headers.get('retry-after-ms'), '1500');
    assert.equal(first.headers.get('x-should-retry'), 'true');
    const err = (await first.json()) as { error: { type: string; message: string } };
    assert.deepEqual(err.error, { type: 'overloaded_error', message: 'Overloaded' });
    const second = await post(fake, body('x', true));
    assert.equal(second.status, 429);
    assert.equal(((await second.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
    const third = (await (await post(fake, body('x', false))).json()) as { content: { text: string }[] };
    assert.equal(third.content[0]?.text, 'third');
    const fourth = (await (await post(fake, body('x', false))).json()) as { content: { text: string }[] };
    assert.equal(fourth.content[0]?.text, 'You said: x');
    assert.equal(fake.requests.length, 4);
  });

  void it('lets setScenario pick by request index', async () => {
    fake.setScenario((_req, n) => ({ kind: 'message', deltas: [`answer ${n}`] }));
    for (const n of [0, 1]) {
      const msg = (await (await post(fake, body('x', false))).json()) as { content: { text: string }[] };
      assert.equal(msg.content[0]?.text, `answer ${n}`);
    }
  });

  void it('marks closedEarly when the client aborts a stalled stream', async () => {
    fake.queue({ kind: 'message', deltas: ['a ', 'b ', 'c'], fault: { type: 'stall', afterDeltas: 2 } });
    const controller = new AbortController();
    const res = await post(fake, body('x', true), { signal: controller.signal });
    const text = await readUntil(res, (t) => count(t, 'text_delta') >= 2);
    assert.equal(count(text, 'text_delta'), 2);
    const rec = lastRequest(fake);
    assert.equal(rec.finishedAt, undefined);
    controller.abort();
    await within(rec.closed, 2000, 'closed after abort');
    assert.equal(rec.closedEarly, true);
    assert.equal(typeof rec.finishedAt, 'number');
  });

  void it('stops paced deltas when the client goes away', async () => {
    fake.queue({ kind: 'message', deltas: ['a ', 'b ', 'c ', 'd'], deltaDelayMs: 40 });
    const controller = new AbortController();
    const started = performance.now();
    const res = await post(fake, body('x', true), { signal: controller.signal });
    await readUntil(res, (t) => count(t, 'text_delta') >= 2);
    assert.ok(performance.now() - started >= 70, 'deltas are paced');
    controller.abort();
    const rec = lastRequest(fake);
    await within(rec.closed, 2000, 'closed after abort');
    assert.equal(rec.closedEarly, true);
  });

  void it('truncate ends the stream cleanly without message_delta/message_stop', async () => {
    fake.queue({ kind: 'message', deltas: ['a ', 'b ', 'c'], fault: { type: 'truncate', afterDeltas: 1 } });
    const events = parseSse(await (await post(fake, body('x', true))).text());
    assert.deepEqual(names(events), ['message_start', 'ping', 'content_block_start', 'content_block_delta']);
  });

  void it('error fault sends event: error and ends; cut and hangup break the connection', async () => {
    fake.queue(
      { kind: 'message', deltas: ['a ', 'b'], fault: { type: 'error', afterDeltas: 1 } },
      { kind: 'message', deltas: ['a ', 'b'], fault: { type: 'cut', afterDeltas: 1 } },
      { kind: 'hangup' },
    );
    const events = parseSse(await (await post(fake, body('x', true))).text());
    assert.equal(events.at(-1)?.event, 'error');
    assert.deepEqual(json(events.at(-1) ?? { event: '', data: '{}' }), {
      type: 'error',
      error: { type: 'overloaded_error', message: 'Overloaded' },
    });
    const cut = await post(fake, body('x', true));
    assert.equal(cut.status, 200);
    await assert.rejects(cut.text());
    await assert.rejects(post(fake, body('x', true)));
  });

  void it('badJson fault sends an unparsable data line, then stalls', async () => {
    fake.queue({ kind: 'message', deltas: ['a ', 'b'], fault: { type: 'badJson', afterDeltas: 1 } });
    const controller = new AbortController();
    const res = await post(fake, body('x', true), { signal: controller.signal });
    const text = await readUntil(res, (t) => t.includes('unterminated'));
    const bad = parseSse(text).at(-1);
    assert.throws(() => JSON.parse(bad?.data ?? ''));
    controller.abort();
    await within(lastRequest(fake).closed, 2000, 'closed');
  });

  void it('streams thinking and tool_use blocks', async () => {
    fake.queue({
      kind: 'message',
      blocks: [
        { type: 'thinking', thinking: ['Let me ', 'think.'], signature: 'sig123' },
        { type: 'text', text: ['Calling ', 'a tool.'] },
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', inputJson: ['{"city":', ' "Paris"}'] },
      ],
    });
    const events = parseSse(await (await post(fake, body('x', true))).text());
    const starts = events.filter((e) => e.event === 'content_block_start').map(json);
    assert.deepEqual(
      starts.map((s) => s.content_block),
      [
        { type: 'thinking', thinking: '' },
        { type: 'text', text: '' },
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} },
      ],
    );
    const deltas = events.filter((e) => e.event === 'content_block_delta').map(json);
    assert.deepEqual(
      deltas.map((d) => [d.index, (d.delta as { type: string }).type]),
      [
        [0, 'thinking_delta'],
        [0, 'thinking_delta'],
        [0, 'signature_delta'],
        [1, 'text_delta'],
        [1, 'text_delta'],
        [2, 'input_json_delta'],
        [2, 'input_json_delta'],
      ],
    );
    const partial = deltas
      .filter((d) => d.index === 2)
      .map((d) => (d.delta as { partial_json: string }).partial_json);
    assert.deepEqual(JSON.parse(partial.join('')), { city: 'Paris' });
    const stop = json(events.find((e) => e.event === 'message_delta') ?? { event: '', data: '{}' });
    assert.equal((stop.delta as { stop_reason: string }).stop_reason, 'tool_use');
    assert.equal(events.filter((e) => e.event === 'content_block_stop').length, 3);
  });

  void it('renders blocks as JSON content when not streaming', async () => {
    fake.queue({
      kind: 'message',
      blocks: [
        { type: 'thinking', thinking: ['hm'], signature: 's' },
        { type: 'tool_use', id: 'toolu_2', name: 'f', inputJson: ['{"a":', '1}'] },
      ],
    });
    const msg = (await (await post(fake, body('x', false))).json()) as Record<string, unknown>;
    assert.deepEqual(msg.content, [
      { type: 'thinking', thinking: 'hm', signature: 's' },
      { type: 'tool_use', id: 'toolu_2', name: 'f', input: { a: 1 } },
    ]);
    assert.equal(msg.stop_reason, 'tool_use');
  });

  void it('byte chunking, coalescing and spaced JSON carry the same events', async () => {
    const reference = parseSse(await (await post(fake, body('héllo wörld ✓', true))).text());
    const strip = (events: SseEvent[]): unknown[] =>
      events.map((e) => {
        const data = json(e);
        if (data.type === 'message_start') delete (data.message as Record<string, unknown>).id;
        return [e.event, data];
      });
    for (const variant of [
      { chunking: 'byte' as const },
      { chunking: 'coalesce' as const },
      { spacedJson: true },
    ]) {
      fake.queue({ kind: 'message', ...variant });
      const text = await (await post(fake, body('héllo wörld ✓', true))).text();
      assert.deepEqual(strip(parseSse(text)), strip(reference), JSON.stringify(variant));
      if ('spacedJson' in variant) assert.match(text, /data: \{"type": "content_block_delta", "index": 0/);
    }
  });

  void it('closes without hanging while a stalled request is open', async () => {
    const local = await startFakeUpstream();
    local.queue({ kind: 'stall' });
    const pending = post(local, body('x', true)).then(
      () => 'answered',
      () => 'failed',
    );
    const rec = await upstreamRequest(local);
    await within(local.close(), 2000, 'close()');
    assert.equal(await within(pending, 2000, 'client settles'), 'failed');
    await within(rec.closed, 2000, 'closed');
    assert.equal(rec.closedEarly, true);
  });
});

void describe('simulated mode', () => {
  void it('answers without a key, clearly marked as simulated, and paces the stream', async () => {
    const sim = await startFakeUpstream({ simulated: true, record: false });
    try {
      const res = await post(sim, body('What is 2+2?', false), {
        headers: { 'anthropic-version': '2023-06-01' },
      });
      assert.equal(res.status, 200);
      const msg = (await res.json()) as { content: { text: string }[] };
      assert.match(
        msg.content[0]?.text ?? '',
        /^\[Simulated Claude — no real model was called\] You asked: "What is 2\+2\?"/,
      );
      assert.equal(sim.requests.length, 0, 'record: false keeps nothing');
      const started = performance.now();
      const stream = await post(sim, body('hi', true));
      await readUntil(stream, (t) => count(t, 'text_delta') >= 3);
      assert.ok(performance.now() - started >= 60, 'simulated deltas are paced');
      await stream.body?.cancel();
    } finally {
      await sim.close();
    }
  });
});

/** `n` requests to GET /v1/models, `parallel` at a time; each answer is read to the end. */
async function listModels(fake: FakeUpstream, n: number, parallel = 32): Promise<void> {
  for (let sent = 0; sent < n; sent += parallel) {
    const batch = Array.from({ length: Math.min(parallel, n - sent) }, async () => {
      const res = await fetch(`${fake.url}/v1/models`, { headers: HEADERS });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    });
    await Promise.all(batch);
  }
}

void describe('recording', () => {
  void it('keeps only the last maxRecorded requests while requestCount counts them all', async () => {
    const fake = await startFakeUpstream({ maxRecorded: 5 });
    try {
      for (let i = 0; i < 12; i++) await (await post(fake, body(`prompt ${i}`, false))).json();
      assert.equal(fake.requests.length, 5);
      const prompts = fake.requests.map(
        (r) => (r.json as { messages: { content: string }[] }).messages[0]?.content,
      );
      assert.deepEqual(prompts, ['prompt 7', 'prompt 8', 'prompt 9', 'prompt 10', 'prompt 11']);
      assert.equal(fake.requestCount, 12);
      fake.reset();
      assert.equal(fake.requests.length, 0);
      assert.equal(fake.requestCount, 12, 'reset() leaves the total alone');
    } finally {
      await fake.close();
    }
  });

  void it('bounds the recorded list by default', async () => {
    const fake = await startFakeUpstream();
    try {
      const extra = 25;
      await listModels(fake, DEFAULT_MAX_RECORDED + extra);
      assert.equal(fake.requestCount, DEFAULT_MAX_RECORDED + extra);
      assert.equal(fake.requests.length, DEFAULT_MAX_RECORDED);
    } finally {
      await fake.close();
    }
  });

  void it('the simulated upstream of --mock records nothing but still counts', async () => {
    // The options src/server.ts and the cluster primary start --mock with.
    const sim = await startFakeUpstream({ simulated: true });
    try {
      const headers = { 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
      for (let i = 0; i < 3; i++) {
        const res = await post(sim, body(`question ${i}`, false), { headers });
        assert.equal(res.status, 200);
        await res.json();
      }
      await listModels(sim, 5);
      assert.equal(sim.requestCount, 8);
      assert.equal(sim.requests.length, 0);
    } finally {
      await sim.close();
    }
  });
});

void describe('max_tokens and request validation', () => {
  let fake: FakeUpstream;
  let sim: FakeUpstream;

  before(async () => {
    fake = await startFakeUpstream();
    sim = await startFakeUpstream({ simulated: true });
  });
  after(async () => {
    await Promise.all([fake.close(), sim.close()]);
  });

  const SIM_HEADERS = { 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
  const ask = (text: string, stream: boolean, maxTokens: number): Record<string, unknown> => ({
    ...body(text, stream),
    max_tokens: maxTokens,
  });

  void it('the simulated Claude stops at max_tokens, as JSON and as a stream', async () => {
    const full = (await (await post(sim, ask('hello', false, 4096), { headers: SIM_HEADERS })).json()) as {
      content: { text: string }[];
      stop_reason: string;
      usage: { output_tokens: number };
    };
    assert.equal(full.stop_reason, 'end_turn');
    assert.ok(full.usage.output_tokens > 5);
    const words = (full.content[0]?.text ?? '').match(/\s*\S+\s*/g) ?? [];

    const cut = (await (
      await post(sim, ask('hello', false, 5), { headers: SIM_HEADERS })
    ).json()) as typeof full;
    assert.equal(cut.stop_reason, 'max_tokens');
    assert.equal(cut.usage.output_tokens, 5);
    assert.equal(cut.content[0]?.text, words.slice(0, 5).join(''));

    const events = parseSse(await (await post(sim, ask('hello', true, 5), { headers: SIM_HEADERS })).text());
    const deltas = events.filter((e) => e.event === 'content_block_delta');
    assert.equal(deltas.map((e) => deltaField(e, 'text')).join(''), words.slice(0, 5).join(''));
    const messageDelta = json(events.find((e) => e.event === 'message_delta') ?? { event: '', data: '{}' });
    assert.deepEqual(messageDelta.delta, { stop_reason: 'max_tokens', stop_sequence: null });
    assert.deepEqual(messageDelta.usage, { output_tokens: 5 });
    assert.equal(events.at(-1)?.event, 'message_stop');
  });

  void it('max_tokens cuts scenario blocks too: text between pieces, a block that does not fit left out', async () => {
    const blocks: FakeBlock[] = [
      { type: 'thinking', thinking: ['a', 'b'], signature: 's' },
      { type: 'text', text: ['one ', 'two ', 'three'] },
      { type: 'tool_use', id: 'toolu_1', name: 'f', inputJson: ['{}'] },
    ];
    fake.queue({ kind: 'message', blocks }, { kind: 'message', blocks });
    const msg = (await (await post(fake, ask('x', false, 5))).json()) as Record<string, unknown>;
    assert.deepEqual(msg.content, [
      { type: 'thinking', thinking: 'ab', signature: 's' },
      { type: 'text', text: 'one two ' },
    ]);
    assert.equal(msg.stop_reason, 'max_tokens');
    assert.equal((msg.usage as { output_tokens: number }).output_tokens, 5);
    const fits = (await (await post(fake, ask('x', false, 7))).json()) as Record<string, unknown>;
    assert.equal(fits.stop_reason, 'tool_use');
    assert.equal((fits.content as unknown[]).length, 3);
  });

  const user = (content: unknown): Record<string, unknown> => ({ role: 'user', content });
  const base = { model: 'claude-sonnet-5', max_tokens: 16, messages: [user('hi')] };
  const rejected: [string, Record<string, unknown>, string][] = [
    ['no model', { max_tokens: 16, messages: [user('hi')] }, 'model: Field required'],
    ['a model that is not a string', { ...base, model: 5 }, 'model: Input should be a valid string'],
    ['no max_tokens', { model: 'claude-sonnet-5', messages: [user('hi')] }, 'max_tokens: Field required'],
    ['max_tokens as a string', { ...base, max_tokens: '16' }, 'max_tokens: Input should be a valid integer'],
    [
      'max_tokens not an integer',
      { ...base, max_tokens: 1.5 },
      'max_tokens: Input should be a valid integer',
    ],
    ['max_tokens 0', { ...base, max_tokens: 0 }, 'max_tokens: Input should be greater than or equal to 1'],
    ['no messages', { model: 'claude-sonnet-5', max_tokens: 16 }, 'messages: Field required'],
    ['messages not a list', { ...base, messages: 'hi' }, 'messages: Input should be a valid list'],
    ['messages: []', { ...base, messages: [] }, 'messages: at least one message is required'],
    [
      'a message that is not an object',
      { ...base, messages: ['hi'] },
      'messages.0: Input should be a valid dictionary',
    ],
    [
      'a system message',
      { ...base, messages: [{ role: 'system', content: 'be brief' }, user('hi')] },
      'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" as an input message role.',
    ],
    [
      'an unknown role',
      { ...base, messages: [user('hi'), { role: 'tool', content: 'x' }] },
      "messages.1.role: Input should be 'user' or 'assistant'",
    ],
    [
      'a message without content',
      { ...base, messages: [{ role: 'user' }] },
      'messages.0.content: Field required',
    ],
    [
      'content that is neither text nor blocks',
      { ...base, messages: [user(5)] },
      'messages.0.content: Input should be a valid string or a list of content blocks',
    ],
    [
      'an empty user message',
      { ...base, messages: [user('')] },
      'messages.0: all messages must have non-empty content except for the optional final assistant message',
    ],
    [
      'an empty assistant message before the last',
      { ...base, messages: [user('hi'), { role: 'assistant', content: [] }, user('again')] },
      'messages.1: all messages must have non-empty content except for the optional final assistant message',
    ],
    ['stream not a boolean', { ...base, stream: 'yes' }, 'stream: Input should be a valid boolean'],
  ];

  void it('rejects what the real API rejects, with a 400 in its error shape', async () => {
    for (const [what, payload, message] of rejected) {
      for (const stream of [false, true]) {
        const served = fake.requestCount;
        const res = await post(fake, { ...payload, ...(payload.stream === undefined ? { stream } : {}) });
        assert.equal(res.status, 400, what);
        const err = (await res.json()) as {
          type: string;
          error: { type: string; message: string };
          request_id: string;
        };
        assert.deepEqual(err.error, { type: 'invalid_request_error', message }, what);
        assert.equal(err.type, 'error');
        assert.equal(err.request_id, res.headers.get('request-id'));
        assert.equal(fake.requestCount, served + 1);
      }
    }
  });

  void it('count_tokens validates the same fields, except max_tokens', async () => {
    for (const [what, payload, message] of rejected) {
      if (message.startsWith('max_tokens')) continue;
      const res = await post(fake, payload, { path: '/v1/messages/count_tokens' });
      assert.equal(res.status, 400, what);
      assert.equal(((await res.json()) as { error: { message: string } }).error.message, message, what);
    }
    const counted = await post(
      fake,
      { model: 'claude-sonnet-5', messages: [user('hi')] },
      { path: '/v1/messages/count_tokens' },
    );
    assert.equal(counted.status, 200);
    assert.equal(typeof ((await counted.json()) as { input_tokens: unknown }).input_tokens, 'number');
  });

  void it('accepts an assistant message first, same-role runs and an empty final assistant message', async () => {
    for (const messages of [
      [{ role: 'assistant', content: 'How can I help?' }, user('hi')],
      [user('hi'), user([{ type: 'text', text: 'again' }])],
      [user('hi'), { role: 'assistant', content: '' }],
    ]) {
      const res = await post(fake, { ...base, messages });
      assert.equal(res.status, 200, JSON.stringify(messages));
      await res.json();
    }
  });
});
