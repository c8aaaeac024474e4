/**
 * JSON nested deeper than MAX_JSON_DEPTH is refused with a 400 that names the field, on every route,
 * before anything walks it (it used to overflow the stack in JSON.stringify: a 500), and never
 * reaches the upstream.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { MODEL } from '../helpers/routes.ts';

/** A JSON schema nesting `levels` object properties, as text (`JSON.stringify` of it would overflow). */
function deepSchemaText(levels: number): string {
  return '{"type":"object","properties":{"a":'.repeat(levels) + '{"type":"string"}' + '}}'.repeat(levels);
}

/** `{"a":[{"a":[…]}]}`, `levels` pairs deep, as text. */
function deepArgumentsText(levels: number): string {
  return '{"a":['.repeat(levels) + '1' + ']}'.repeat(levels);
}

async function post(
  h: Harness,
  path: string,
  body: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${h.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('deeply nested JSON', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
  });

  it('/v1/chat/completions: 6,000 levels in tools[].function.parameters is a 400 naming the field', async () => {
    const tools = `[{"type":"function","function":{"name":"deep","parameters":${deepSchemaText(3000)}}}]`;
    const { status, json } = await post(
      h,
      '/v1/chat/completions',
      `{"model":"${MODEL}","messages":[{"role":"user","content":"Hi"}],"tools":${tools}}`,
    );
    assert.equal(status, 400, JSON.stringify(json));
    const error = json.error as { type: string; code: string; param: string; message: string };
    assert.equal(error.type, 'invalid_request_error');
    assert.equal(error.code, 'invalid_request_error');
    assert.match(error.param, /^tools\[0\]\.function\.parameters\.properties\.a/);
    assert.match(error.message, /^tools\[0\]\.function\.parameters\.properties\.a.* deeper than 64 levels/);
    assert.equal(h.fake.requests.length, 0);
  });

  it('/v1/chat/completions: 6,000 levels in tool_calls[].function.arguments is a 400 naming the field', async () => {
    const call = {
      id: 'call_1',
      type: 'function',
      function: { name: 'deep', arguments: deepArgumentsText(3000) },
    };
    const body = {
      model: MODEL,
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: 'call_1', content: 'done' },
      ],
    };
    const { status, json } = await post(h, '/v1/chat/completions', JSON.stringify(body));
    assert.equal(status, 400, JSON.stringify(json));
    const error = json.error as { param: string; message: string };
    assert.equal(error.param, 'messages[1].tool_calls[0].function.arguments');
    assert.match(error.message, /deeper than 64 levels/);
    assert.equal(h.fake.requests.length, 0);
  });

  it('/v1/messages: a 400 in Anthropic’s shape naming the field', async () => {
    const body = `{"model":"${MODEL}","max_tokens":16,"messages":[{"role":"user","content":"Hi"}],"tools":[{"name":"deep","input_schema":${deepSchemaText(3000)}}]}`;
    const { status, json } = await post(h, '/v1/messages', body);
    assert.equal(status, 400, JSON.stringify(json));
    assert.equal(json.type, 'error');
    const error = json.error as { type: string; message: string };
    assert.equal(error.type, 'invalid_request_error');
    assert.match(error.message, /^tools\[0\]\.input_schema\.properties\.a.* deeper than 64 levels/);
    assert.equal(h.fake.requests.length, 0);
  });

  it('/llm/query: a 400 in the service’s envelope naming the field', async () => {
    const { status, json } = await post(
      h,
      '/llm/query',
      `{"prompt":"Hi","metadata":${deepArgumentsText(3000)}}`,
    );
    assert.equal(status, 400, JSON.stringify(json));
    const error = json.error as { type: string; message: string };
    assert.equal(error.type, 'invalid_request_error');
    assert.match(error.message, /^metadata\.a\[0\]\.a\[0\].* deeper than 64 levels/);
    assert.equal(h.fake.requests.length, 0);
  });

  it('a tool schema nested 25 levels (50 in the body) still goes through', async () => {
    h.fake.queue({ kind: 'message', deltas: ['ok'] });
    const tools = `[{"type":"function","function":{"name":"nested","parameters":${deepSchemaText(25)}}}]`;
    const { status, json } = await post(
      h,
      '/v1/chat/completions',
      `{"model":"${MODEL}","messages":[{"role":"user","content":"Hi"}],"tools":${tools}}`,
    );
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(h.fake.requests.length, 1);
  });
});
