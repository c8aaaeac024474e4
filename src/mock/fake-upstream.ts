/**
 * A faithful fake of the Anthropic Messages API on loopback, built on node:http only.
 *
 * Used as the "simulated Claude" of `--mock` mode, as the fake upstream of the loopback tests
 * (scenarios and fault modes) and by the benchmark. Wire format follows
 * shared/reference/anthropic-api.md: SSE events `event: <type>\ndata: <json>\n\n`, error bodies
 * `{"type":"error","error":{type,message},"request_id"}` and a `request-id` header on every answer.
 *
 * Hot path: each SSE event is serialised once into a string before streaming starts, then written
 * with a single `res.write`; pacing uses one timer slot per response, cleared when the client leaves.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

export type FakeScenario =
  | {
      kind: 'message';
      deltas?: string[];
      deltaDelayMs?: number;
      headersDelayMs?: number;
      stopReason?: string;
      usage?: {
        input_tokens?: number;
        output_tokens?: number;
        cache_creation_input_tokens?: number;
        cache_read_input_tokens?: number;
      };
      pingAfterStart?: boolean;
      spacedJson?: boolean;
      chunking?: 'event' | 'byte' | 'coalesce';
      blocks?: FakeBlock[];
      fault?:
        | { type: 'stall'; afterDeltas: number }
        | { type: 'error'; afterDeltas: number; errorType?: string; message?: string }
        | { type: 'truncate'; afterDeltas: number }
        | { type: 'cut'; afterDeltas: number }
        | { type: 'badJson'; afterDeltas: number };
    }
  | {
      kind: 'error';
      status: number;
      errorType?: string;
      message?: string;
      retryAfter?: string;
      retryAfterMs?: string;
      shouldRetry?: boolean;
      headersDelayMs?: number;
    }
  | { kind: 'stall' }
  | { kind: 'hangup' };

export type FakeBlock =
  | { type: 'text'; text: string[] }
  | { type: 'thinking'; thinking: string[]; signature: string }
  | { type: 'tool_use'; id: string; name: string; inputJson: string[] };

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json: unknown;
  receivedAt: number;
  closedEarly: boolean;
  finishedAt?: number;
  closed: Promise<void>;
}

export interface FakeUpstreamOptions {
  host?: string;
  port?: number;
  /** --mock mode: paced, clearly marked default answers. Also makes requireApiKey default to false. */
  simulated?: boolean;
  /** Default true (false when simulated): requests without a key get 401; key 'bad-key' always does. */
  requireApiKey?: boolean;
  record?: boolean;
}

export interface FakeUpstream {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** n counts the POST /v1/messages requests that passed validation (0-based). */
  setScenario(fn: (req: RecordedRequest, n: number) => FakeScenario): void;
  queue(...scenarios: FakeScenario[]): void;
  reset(): void;
  close(): Promise<void>;
}

type MessageScenario = Extract<FakeScenario, { kind: 'message' }>;
type ErrorScenario = Extract<FakeScenario, { kind: 'error' }>;
type Fault = NonNullable<MessageScenario['fault']>;
type Chunking = NonNullable<MessageScenario['chunking']>;
type JsonObject = Record<string, unknown>;
type Serialize = (value: unknown) => string;
type Headers = Record<string, string>;

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

interface Problem {
  status: number;
  type: string;
  message: string;
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const SIMULATED_DELTA_DELAY_MS = 25;
const DEFAULT_SCENARIO: FakeScenario = { kind: 'message' };

const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'conflict_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

const ERROR_MESSAGES: Readonly<Record<string, string>> = {
  overloaded_error: 'Overloaded',
  rate_limit_error: 'Number of requests has exceeded your rate limit',
  api_error: 'Internal server error',
  timeout_error: 'Request timed out',
};

const MODELS = [
  {
    type: 'model',
    id: 'claude-sonnet-5',
    display_name: 'Claude Sonnet 5',
    created_at: '2025-11-24T00:00:00Z',
  },
  { type: 'model', id: 'claude-opus-5', display_name: 'Claude Opus 5', created_at: '2025-11-24T00:00:00Z' },
  {
    type: 'model',
    id: 'claude-haiku-4-5',
    display_name: 'Claude Haiku 4.5',
    created_at: '2025-10-15T00:00:00Z',
  },
] as const;

const MODEL_LIST = {
  data: MODELS,
  has_more: false,
  first_id: MODELS[0].id,
  last_id: MODELS[MODELS.length - 1]?.id ?? null,
};

/** The live API sends pings with spaced JSON even inside otherwise compact streams. */
const PING_EVENT = 'event: ping\ndata: {"type": "ping"}\n\n';
const BAD_JSON_EVENT =
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"unterminated\n\n';

// ---------------------------------------------------------------------------------------------
// Small helpers

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

function errorTypeFor(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

function invalid(message: string): Problem {
  return { status: 400, type: 'invalid_request_error', message };
}

function notFound(message: string): Problem {
  return { status: 404, type: 'not_found_error', message };
}

/** Words with their following whitespace: joining the pieces gives back `text` exactly. */
function splitWords(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? (text === '' ? [] : [text]);
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  const parts: string[] = [];
  for (const block of asArray(content)) {
    if (isObject(block) && block.type === 'text' && typeof block.text === 'string') parts.push(block.text);
  }
  return parts.join('\n');
}

function lastUserText(body: JsonObject): string {
  const messages = asArray(body.messages);
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (isObject(message) && message.role === 'user') return textOf(message.content);
  }
  return '';
}

function promptText(body: JsonObject): string {
  const texts = asArray(body.messages).map((m) => (isObject(m) ? textOf(m.content) : ''));
  return [textOf(body.system), ...texts].join('\n');
}

function spacedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${(value as unknown[]).map(spacedJson).join(', ')}]`;
  if (isObject(value)) {
    const parts = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${spacedJson(v)}`);
    return `{${parts.join(', ')}}`;
  }
  return JSON.stringify(value);
}

function sse(type: string, data: string): string {
  return `event: ${type}\ndata: ${data}\n\n`;
}

function errorBody(type: string, message: string, requestId?: string): JsonObject {
  const body: JsonObject = { type: 'error', error: { type, message } };
  if (requestId !== undefined) body.request_id = requestId;
  return body;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Headers = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

function sendProblem(ex: Exchange, problem: Problem, headers: Headers = {}): void {
  sendJson(ex.res, problem.status, errorBody(problem.type, problem.message, ex.requestId), headers);
}

/** End the connection without the chunked terminator, after the bytes already written are flushed. */
function cutSocket(res: ServerResponse): void {
  const socket = res.socket;
  if (socket === null) {
    res.destroy();
    return;
  }
  socket.end(() => socket.destroy());
}

// ---------------------------------------------------------------------------------------------
// Request validation

function bearer(authorization: string | undefined): string | undefined {
  return authorization?.startsWith('Bearer ') === true ? authorization.slice(7) : undefined;
}

function headerProblem(headers: IncomingHttpHeaders, requireKey: boolean): Problem | undefined {
  const raw = headers['x-api-key'];
  const key = typeof raw === 'string' && raw !== '' ? raw : bearer(headers.authorization);
  if (key === 'bad-key') return { status: 401, type: 'authentication_error', message: 'invalid x-api-key' };
  if (requireKey && (key === undefined || key === '')) {
    return { status: 401, type: 'authentication_error', message: 'x-api-key header is required' };
  }
  if (headers['anthropic-version'] === undefined) return invalid('anthropic-version: header is required');
  return undefined;
}

function bodyProblem(body: JsonObject, needMaxTokens: boolean): Problem | undefined {
  if (typeof body.model !== 'string') return invalid('model: Field required');
  if (needMaxTokens && typeof body.max_tokens !== 'number') return invalid('max_tokens: Field required');
  if (!Array.isArray(body.messages)) return invalid('messages: Field required');
  if (body.model === 'claude-does-not-exist') {
    return notFound(`model: ${body.model}`);
  }
  return undefined;
}

/** The JSON object body, or undefined after answering the validation error. */
function validBody(ex: Exchange, rec: RecordedRequest, needMaxTokens: boolean): JsonObject | undefined {
  const body = rec.json;
  const problem = isObject(body)
    ? bodyProblem(body, needMaxTokens)
    : invalid('Request body must be a JSON object.');
  if (problem === undefined && isObject(body)) return body;
  sendProblem(ex, problem ?? invalid('Request body must be a JSON object.'));
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Message plan: what the answer contains, shared by the JSON and SSE renderings

interface Plan {
  id: string;
  model: string;
  blocks: readonly FakeBlock[];
  stopReason: string;
  usage: Usage;
}

function defaultText(body: JsonObject, simulated: boolean): string {
  const prompt = lastUserText(body);
  if (!simulated) return `You said: ${prompt}`;
  const shown = prompt.length > 200 ? `${prompt.slice(0, 200)}…` : prompt;
  return (
    `[Simulated Claude — no real model was called] You asked: "${shown}". ` +
    'This answer comes from the built-in mock upstream, so no API key was used and nothing left this machine. ' +
    'Run the connector without --mock and with a real Anthropic API key to get genuine answers from Claude.'
  );
}

function pieceCount(block: FakeBlock): number {
  switch (block.type) {
    case 'text':
      return block.text.length;
    case 'thinking':
      return block.thinking.length + 1;
    case 'tool_use':
      return block.inputJson.length;
  }
}

function makePlan(s: MessageScenario, body: JsonObject, id: string, simulated: boolean): Plan {
  const blocks: readonly FakeBlock[] = s.blocks ?? [
    { type: 'text', text: s.deltas ?? splitWords(defaultText(body, simulated)) },
  ];
  const pieces = blocks.reduce((n, b) => n + pieceCount(b), 0);
  const hasTool = blocks.some((b) => b.type === 'tool_use');
  const u = s.usage ?? {};
  return {
    id,
    model: typeof body.model === 'string' ? body.model : 'claude-sonnet-5',
    blocks,
    stopReason: s.stopReason ?? (hasTool ? 'tool_use' : 'end_turn'),
    usage: {
      input_tokens: u.input_tokens ?? Math.max(1, splitWords(promptText(body)).length),
      output_tokens: u.output_tokens ?? pieces,
      cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
      cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
    },
  };
}

function contentOf(block: FakeBlock): JsonObject {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: block.text.join('') };
    case 'thinking':
      return { type: 'thinking', thinking: block.thinking.join(''), signature: block.signature };
    case 'tool_use': {
      const json = block.inputJson.join('');
      return {
        type: 'tool_use',
        id: block.id,
        name: block.name,
        input: json === '' ? {} : (JSON.parse(json) as unknown),
      };
    }
  }
}

function messageJson(plan: Plan): JsonObject {
  return {
    id: plan.id,
    type: 'message',
    role: 'assistant',
    model: plan.model,
    content: plan.blocks.map(contentOf),
    stop_reason: plan.stopReason,
    stop_sequence: null,
    usage: plan.usage,
  };
}

// ---------------------------------------------------------------------------------------------
// SSE frames: every event pre-serialised; `kind` marks the points where a fault may trigger

interface Frame {
  readonly text: string;
  readonly kind: 'other' | 'delta' | 'end';
}

function startEvent(plan: Plan, ser: Serialize): string {
  const { input_tokens, cache_creation_input_tokens, cache_read_input_tokens } = plan.usage;
  const message = {
    id: plan.id,
    type: 'message',
    role: 'assistant',
    content: [],
    model: plan.model,
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens: 1 },
  };
  return sse('message_start', ser({ type: 'message_start', message }));
}

function pushBlock(frames: Frame[], block: FakeBlock, index: number, ser: Serialize): void {
  const start = (content_block: JsonObject): void => {
    frames.push({
      kind: 'other',
      text: sse('content_block_start', ser({ type: 'content_block_start', index, content_block })),
    });
  };
  const delta = (d: JsonObject): void => {
    frames.push({
      kind: 'delta',
      text: sse('content_block_delta', ser({ type: 'content_block_delta', index, delta: d })),
    });
  };
  switch (block.type) {
    case 'text':
      start({ type: 'text', text: '' });
      for (const text of block.text) delta({ type: 'text_delta', text });
      break;
    case 'thinking':
      start({ type: 'thinking', thinking: '' });
      for (const thinking of block.thinking) delta({ type: 'thinking_delta', thinking });
      delta({ type: 'signature_delta', signature: block.signature });
      break;
    case 'tool_use':
      start({ type: 'tool_use', id: block.id, name: block.name, input: {} });
      for (const partial_json of block.inputJson) delta({ type: 'input_json_delta', partial_json });
      break;
  }
  frames.push({ kind: 'other', text: sse('content_block_stop', ser({ type: 'content_block_stop', index })) });
}

function buildFrames(plan: Plan, ping: boolean, ser: Serialize): Frame[] {
  const frames: Frame[] = [{ kind: 'other', text: startEvent(plan, ser) }];
  if (ping) frames.push({ kind: 'other', text: PING_EVENT });
  plan.blocks.forEach((block, index) => {
    pushBlock(frames, block, index, ser);
  });
  const messageDelta = {
    type: 'message_delta',
    delta: { stop_reason: plan.stopReason, stop_sequence: null },
    usage: { output_tokens: plan.usage.output_tokens },
  };
  frames.push({ kind: 'end', text: sse('message_delta', ser(messageDelta)) });
  frames.push({ kind: 'other', text: sse('message_stop', ser({ type: 'message_stop' })) });
  return frames;
}

// ---------------------------------------------------------------------------------------------
// Pacing and playback

/** One pending timer per response; stop() cancels it and blocks further scheduling. */
class Pacer {
  stopped = false;
  private timeout: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  after(ms: number, fn: () => void): void {
    if (this.stopped) return;
    if (ms > 0) this.timeout = setTimeout(fn, ms);
    else this.immediate = setImmediate(fn);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timeout);
    clearImmediate(this.immediate);
  }
}

interface PlayConfig {
  delayMs: number;
  fault: Fault | undefined;
  chunking: Chunking;
  ser: Serialize;
}

/**
 * Writes the frames in order. A fault fires just before the (afterDeltas+1)-th delta, or before
 * message_delta when there are fewer deltas.
 */
class SsePlayer {
  private index = 0;
  private deltas = 0;
  private waited = false;
  private pending = '';
  private pieceSeq = 0;
  private readonly res: ServerResponse;
  private readonly frames: readonly Frame[];
  private readonly cfg: PlayConfig;
  private readonly pacer: Pacer;

  constructor(res: ServerResponse, frames: readonly Frame[], cfg: PlayConfig, pacer: Pacer) {
    this.res = res;
    this.frames = frames;
    this.cfg = cfg;
    this.pacer = pacer;
  }

  readonly run = (): void => {
    const { cfg } = this;
    while (!this.pacer.stopped) {
      const frame = this.frames[this.index];
      if (frame === undefined) {
        this.flush();
        this.res.end();
        return;
      }
      if (frame.kind !== 'other' && cfg.fault !== undefined && this.deltas >= cfg.fault.afterDeltas) {
        this.fault(cfg.fault);
        return;
      }
      if (frame.kind === 'delta' && cfg.delayMs > 0 && !this.waited) {
        this.waited = true;
        this.pacer.after(cfg.delayMs, this.run);
        return;
      }
      this.waited = false;
      this.index++;
      if (frame.kind === 'delta') this.deltas++;
      if (cfg.chunking === 'byte') {
        this.writeBytes(Buffer.from(frame.text), 0);
        return;
      }
      if (cfg.chunking === 'coalesce') this.pending += frame.text;
      else this.res.write(frame.text);
    }
  };

  /** Writes 1-3 bytes at a time (splitting UTF-8 sequences too), yielding to the loop in between. */
  private writeBytes(buf: Buffer, offset: number): void {
    const end = offset + (this.pieceSeq++ % 3) + 1;
    this.res.write(buf.subarray(offset, end));
    if (end < buf.length) {
      this.pacer.after(0, () => {
        this.writeBytes(buf, end);
      });
    } else {
      this.pacer.after(0, this.run);
    }
  }

  private flush(): void {
    if (this.pending === '') return;
    this.res.write(this.pending);
    this.pending = '';
  }

  private fault(f: Fault): void {
    this.flush();
    switch (f.type) {
      case 'stall':
        return;
      case 'error': {
        const type = f.errorType ?? 'overloaded_error';
        const message = f.message ?? ERROR_MESSAGES[type] ?? 'Upstream error';
        this.res.end(sse('error', this.cfg.ser(errorBody(type, message))));
        return;
      }
      case 'truncate':
        this.res.end();
        return;
      case 'cut':
        cutSocket(this.res);
        return;
      case 'badJson':
        this.res.write(BAD_JSON_EVENT);
        return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Server

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  pacer: Pacer;
  requestId: string;
  gone: boolean;
  settle: ((early: boolean) => void) | undefined;
}

function newRecord(req: IncomingMessage, body: Buffer): [RecordedRequest, (early: boolean) => void] {
  let resolve: () => void = () => undefined;
  const closed = new Promise<void>((r) => {
    resolve = r;
  });
  let json: unknown;
  try {
    json = body.length > 0 ? (JSON.parse(body.toString('utf8')) as unknown) : undefined;
  } catch {
    json = undefined;
  }
  const rec: RecordedRequest = {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    body,
    json,
    receivedAt: performance.now(),
    closedEarly: false,
    closed,
  };
  const settle = (early: boolean): void => {
    if (rec.finishedAt !== undefined) return;
    rec.closedEarly = early;
    rec.finishedAt = performance.now();
    resolve();
  };
  return [rec, settle];
}

function readBody(req: IncomingMessage, done: (body: Buffer, tooLarge: boolean) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    const tooLarge = size > MAX_BODY_BYTES;
    done(tooLarge ? Buffer.alloc(0) : Buffer.concat(chunks), tooLarge);
  });
}

class Fake implements FakeUpstream {
  url = '';
  readonly requests: RecordedRequest[] = [];
  private readonly server: Server;
  private readonly active = new Set<Pacer>();
  private readonly queued: FakeScenario[] = [];
  private scenarioFn: ((req: RecordedRequest, n: number) => FakeScenario) | undefined;
  private served = 0;
  private requestSeq = 0;
  private messageSeq = 0;
  private readonly simulated: boolean;
  private readonly requireApiKey: boolean;
  private readonly record: boolean;

  constructor(opts: FakeUpstreamOptions) {
    this.simulated = opts.simulated ?? false;
    this.requireApiKey = opts.requireApiKey ?? !this.simulated;
    this.record = opts.record ?? true;
    this.server = createServer(this.onRequest);
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        const actualPort = typeof address === 'object' && address !== null ? address.port : port;
        this.url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
        resolve();
      });
    });
  }

  setScenario(fn: (req: RecordedRequest, n: number) => FakeScenario): void {
    this.scenarioFn = fn;
  }

  queue(...scenarios: FakeScenario[]): void {
    this.queued.push(...scenarios);
  }

  reset(): void {
    this.requests.splice(0);
    this.queued.splice(0);
    this.scenarioFn = undefined;
    this.served = 0;
  }

  async close(): Promise<void> {
    for (const pacer of this.active) pacer.stop();
    this.active.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const ex: Exchange = {
      req,
      res,
      pacer: new Pacer(),
      requestId: `req_fake_${++this.requestSeq}`,
      gone: false,
      settle: undefined,
    };
    this.active.add(ex.pacer);
    res.setHeader('request-id', ex.requestId);
    res.once('close', () => {
      ex.pacer.stop();
      this.active.delete(ex.pacer);
      ex.gone = true;
      ex.settle?.(!res.writableFinished);
    });
    readBody(req, (body, tooLarge) => {
      this.dispatch(ex, body, tooLarge);
    });
  };

  private dispatch(ex: Exchange, body: Buffer, tooLarge: boolean): void {
    const [rec, settle] = newRecord(ex.req, body);
    const path = rec.url.split('?', 1)[0] ?? '/';
    if (path.startsWith('/v1/') && this.record) this.requests.push(rec);
    ex.settle = settle;
    if (ex.gone) {
      settle(true);
      return;
    }
    try {
      const problem = tooLarge
        ? {
            status: 413,
            type: 'request_too_large',
            message: 'Request exceeds the maximum allowed number of bytes.',
          }
        : headerProblem(rec.headers, this.requireApiKey);
      if (problem === undefined) this.route(ex, rec, path);
      else sendProblem(ex, problem);
    } catch (err) {
      const message = `Fake upstream failure: ${String(err)}`;
      if (ex.res.headersSent) ex.res.destroy();
      else sendProblem(ex, { status: 500, type: 'api_error', message });
    }
  }

  private route(ex: Exchange, rec: RecordedRequest, path: string): void {
    const post = rec.method === 'POST';
    const get = rec.method === 'GET';
    if (post && path === '/v1/messages') this.messages(ex, rec);
    else if (post && path === '/v1/messages/count_tokens') this.countTokens(ex, rec);
    else if (get && path === '/v1/models') sendJson(ex.res, 200, MODEL_LIST);
    else if (get && path.startsWith('/v1/models/')) this.model(ex, path.slice('/v1/models/'.length));
    else sendProblem(ex, notFound(`Not found: ${rec.method} ${path}`));
  }

  private model(ex: Exchange, rawId: string): void {
    const id = decodeURIComponent(rawId);
    const model = MODELS.find((m) => m.id === id);
    if (model === undefined) sendProblem(ex, notFound(`model: ${id}`));
    else sendJson(ex.res, 200, model);
  }

  private countTokens(ex: Exchange, rec: RecordedRequest): void {
    const body = validBody(ex, rec, false);
    if (body === undefined) return;
    sendJson(ex.res, 200, { input_tokens: Math.max(1, Math.ceil(promptText(body).length / 4)) });
  }

  private messages(ex: Exchange, rec: RecordedRequest): void {
    const body = validBody(ex, rec, true);
    if (body === undefined) return;
    const scenario = this.queued.shift() ?? this.scenarioFn?.(rec, this.served) ?? DEFAULT_SCENARIO;
    this.served++;
    switch (scenario.kind) {
      case 'message':
        this.answerMessage(ex, scenario, body);
        break;
      case 'error':
        this.answerError(ex, scenario);
        break;
      case 'stall':
        break;
      case 'hangup':
        ex.res.destroy();
        break;
    }
  }

  private answerMessage(ex: Exchange, s: MessageScenario, body: JsonObject): void {
    const plan = makePlan(s, body, `msg_fake_${++this.messageSeq}`, this.simulated);
    const go =
      body.stream === true
        ? (): void => {
            this.stream(ex, s, plan);
          }
        : (): void => {
            sendJson(ex.res, 200, messageJson(plan));
          };
    const delay = s.headersDelayMs ?? 0;
    if (delay > 0) ex.pacer.after(delay, go);
    else go();
  }

  private stream(ex: Exchange, s: MessageScenario, plan: Plan): void {
    const ser: Serialize = s.spacedJson === true ? spacedJson : JSON.stringify;
    const frames = buildFrames(plan, s.pingAfterStart ?? true, ser);
    const chunking = s.chunking ?? 'event';
    const defaultDelay = this.simulated ? SIMULATED_DELTA_DELAY_MS : 0;
    const delayMs = chunking === 'coalesce' ? 0 : (s.deltaDelayMs ?? defaultDelay);
    ex.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
    });
    new SsePlayer(ex.res, frames, { delayMs, fault: s.fault, chunking, ser }, ex.pacer).run();
  }

  private answerError(ex: Exchange, s: ErrorScenario): void {
    const headers: Headers = {};
    if (s.retryAfter !== undefined) headers['retry-after'] = s.retryAfter;
    if (s.retryAfterMs !== undefined) headers['retry-after-ms'] = s.retryAfterMs;
    if (s.shouldRetry !== undefined) headers['x-should-retry'] = String(s.shouldRetry);
    const type = s.errorType ?? errorTypeFor(s.status);
    const message = s.message ?? ERROR_MESSAGES[type] ?? `Simulated ${type} (HTTP ${s.status})`;
    const send = (): void => {
      sendProblem(ex, { status: s.status, type, message }, headers);
    };
    const delay = s.headersDelayMs ?? 0;
    if (delay > 0) ex.pacer.after(delay, send);
    else send();
  }
}

export async function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const fake = new Fake(opts);
  await fake.listen(opts.host ?? '127.0.0.1', opts.port ?? 0);
  return fake;
}
