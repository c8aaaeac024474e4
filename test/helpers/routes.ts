import assert from 'node:assert/strict';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

/** The three answering routes, each with its own request body and its own error shape. */
export type RouteName = 'query' | 'messages' | 'chat';
export const ROUTES: readonly RouteName[] = ['query', 'messages', 'chat'];

export const MODEL = 'claude-sonnet-5';

const PATHS: Record<RouteName, string> = {
  query: '/llm/query',
  messages: '/v1/messages',
  chat: '/v1/chat/completions',
};

export interface AskOptions {
  stream?: boolean;
  maxTokens?: number;
  /** Extra request headers, e.g. the client key. */
  headers?: Record<string, string>;
  signal?: AbortSignal;
  prompt?: string;
}

function bodyFor(route: RouteName, options: AskOptions): unknown {
  const stream = options.stream ?? true;
  const prompt = options.prompt ?? 'Hi';
  const maxTokens = options.maxTokens ?? 16;
  switch (route) {
    case 'query':
      return { prompt, stream, max_tokens: maxTokens };
    case 'messages':
      return { model: MODEL, max_tokens: maxTokens, messages: [{ role: 'user', content: prompt }], stream };
    case 'chat':
      return { model: MODEL, max_tokens: maxTokens, messages: [{ role: 'user', content: prompt }], stream };
  }
}

/** One request to `route` (streamed unless `stream: false`). */
export function ask(baseUrl: string, route: RouteName, options: AskOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  if (route === 'messages') headers['anthropic-version'] = '2023-06-01';
  return fetch(`${baseUrl}${PATHS[route]}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(bodyFor(route, options)),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

export const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
export const apiKey = (key: string): Record<string, string> => ({ 'x-api-key': key });

/** OpenAI's broad error class for the service's types, as the chat route renders them. */
const OPENAI_TYPES: Record<string, string> = {
  authentication_error: 'authentication_error',
  rate_limit_error: 'rate_limit_error',
  invalid_request_error: 'invalid_request_error',
  overloaded_error: 'server_error',
};

/**
 * Asserts an error answer in the route's own shape and returns its message:
 * `/llm/query` `{"error":{type,message},"request_id"}`, `/v1/messages`
 * `{"type":"error","error":{type,message},"request_id"}`, `/v1/chat/completions`
 * `{"error":{message,type,param,code}}`.
 */
export function assertErrorShape(route: RouteName, body: unknown, type: string): string {
  const json = body as Record<string, unknown>;
  const error = json.error as Record<string, unknown> | undefined;
  assert.ok(error && typeof error.message === 'string', `no error message in ${JSON.stringify(body)}`);
  switch (route) {
    case 'query':
      assert.deepEqual(Object.keys(json).sort(), ['error', 'request_id']);
      assert.equal(typeof json.request_id, 'string');
      assert.deepEqual(Object.keys(error).sort(), ['message', 'type']);
      assert.equal(error.type, type);
      break;
    case 'messages':
      assert.equal(json.type, 'error');
      assert.equal(typeof json.request_id, 'string');
      assert.equal(error.type, type);
      break;
    case 'chat':
      assert.deepEqual(Object.keys(json), ['error']);
      assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(error.code, type);
      assert.equal(error.type, OPENAI_TYPES[type] ?? 'server_error');
      assert.equal(error.param, null);
      break;
  }
  return error.message;
}

/** Reads a JSON error answer, checks status and shape, and returns the response headers. */
export async function expectError(
  route: RouteName,
  res: Response,
  status: number,
  type: string,
): Promise<{ headers: Headers; message: string; text: string }> {
  const text = await res.text();
  assert.equal(res.status, status, `${route}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const message = assertErrorShape(route, JSON.parse(text) as unknown, type);
  return { headers: res.headers, message, text };
}

/** Reads a successful answer to its end and checks that it is complete in the route's format. */
export async function expectAnswer(route: RouteName, res: Response, stream = true): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, 200, `${route}: ${text}`);
  const type = res.headers.get('content-type') ?? '';
  if (stream) {
    assert.match(type, /^text\/event-stream/);
    const end = { query: /event: done\n/, messages: /event: message_stop\n/, chat: /data: \[DONE\]\n\n$/ }[
      route
    ];
    assert.match(text, end, `${route}: incomplete stream ${text}`);
  } else {
    assert.match(type, /^application\/json/);
  }
  return text;
}

export interface RateLimitHeaders {
  limit: number;
  remaining: number;
  reset: number;
}

/** The `RateLimit-*` headers as numbers (asserting all three are there and are integers). */
export function rateLimitOf(headers: Headers): RateLimitHeaders {
  const read = (name: string): number => {
    const raw = headers.get(name);
    assert.ok(raw !== null, `no ${name} header`);
    assert.match(raw, /^\d+$/, `${name}: ${raw}`);
    return Number(raw);
  };
  return {
    limit: read('ratelimit-limit'),
    remaining: read('ratelimit-remaining'),
    reset: read('ratelimit-reset'),
  };
}

/** `Retry-After` in whole seconds, >= 1. */
export function retryAfterOf(headers: Headers): number {
  const raw = headers.get('retry-after');
  assert.ok(raw !== null, 'no Retry-After header');
  assert.match(raw, /^\d+$/);
  const seconds = Number(raw);
  assert.ok(seconds >= 1, `Retry-After ${raw}`);
  return seconds;
}

/** Reads a streamed answer until `marker` has arrived; the rest stays unread (and the stream open). */
export async function readUntil(
  res: Response,
  marker: string,
): Promise<{ text: string; reader: ReadableStreamDefaultReader<Uint8Array> }> {
  assert.equal(res.status, 200);
  assert.ok(res.body, 'no body');
  const reader: ReadableStreamDefaultReader<Uint8Array> = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes(marker)) {
    const { done, value } = await reader.read();
    if (done) assert.fail(`the stream ended before "${marker}": ${text}`);
    text += decoder.decode(value, { stream: true });
  }
  return { text, reader };
}

/** Reads a streamed answer until `marker` has arrived, then aborts the request (the client leaves). */
export async function readUntilThenAbort(
  res: Response,
  marker: string,
  controller: AbortController,
): Promise<string> {
  const { text, reader } = await readUntil(res, marker);
  controller.abort();
  await reader.cancel().catch(() => undefined);
  return text;
}

export type MetricFamilies = ReturnType<typeof parsePrometheusTextFormat>;

/** GET /metrics, parsed with a Prometheus text parser. */
export async function scrapeMetrics(baseUrl: string): Promise<MetricFamilies> {
  const res = await fetch(`${baseUrl}/metrics`);
  assert.equal(res.status, 200);
  return parsePrometheusTextFormat(await res.text());
}

/** The sum of a counter or gauge over the series whose labels include `labels` (0 when absent). */
export function metricValue(
  families: MetricFamilies,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = families.find((f) => f.name === name);
  if (!family) return 0;
  const matching = family.metrics.filter((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v),
  );
  return matching.reduce((sum, m) => sum + Number(m.value ?? 0), 0);
}
