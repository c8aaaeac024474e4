/**
 * The /llm/query schemas as plain JSON Schema (Fastify's Ajv validates them, @fastify/swagger
 * documents them); the TypeScript types are derived from them at compile time only.
 */
import type { FromSchema } from 'json-schema-to-ts';

const nonBlank = { minLength: 1, pattern: '\\S' } as const;

export const ChatMessage = {
  type: 'object',
  required: ['role', 'content'],
  properties: {
    role: {
      anyOf: [
        { type: 'string', const: 'user' },
        { type: 'string', const: 'assistant' },
      ],
    },
    content: { type: 'string', ...nonBlank, description: 'The text of the turn' },
  },
  additionalProperties: false,
} as const;

export const QueryBody = {
  type: 'object',
  properties: {
    prompt: { type: 'string', ...nonBlank, description: 'One user turn. Give either prompt or messages.' },
    messages: {
      type: 'array',
      items: ChatMessage,
      minItems: 1,
      description: 'Multi-turn conversation. Give either prompt or messages.',
    },
    system: { type: 'string', description: 'System prompt' },
    model: { type: 'string', minLength: 1, maxLength: 200, description: 'Defaults to ANTHROPIC_MODEL' },
    max_tokens: {
      type: 'integer',
      minimum: 1,
      maximum: 128000,
      description: 'Defaults to ANTHROPIC_MAX_TOKENS',
    },
    temperature: { type: 'number', minimum: 0, maximum: 1 },
    top_p: { type: 'number', minimum: 0, maximum: 1 },
    top_k: { type: 'integer', minimum: 0 },
    stop_sequences: { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 16 },
    stream: { type: 'boolean', default: true, description: 'false: one JSON answer instead of SSE' },
    resumable: {
      type: 'boolean',
      default: false,
      description:
        'true: every event carries an `id:` and the answer survives a lost connection: resume it with GET /llm/answers/{id}/events (see X-Answer-ID)',
    },
    background: {
      type: 'boolean',
      default: false,
      description:
        "true: 202 at once with the answer's id; it is generated to the end whether anyone follows it or not (poll GET /llm/answers/{id})",
    },
  },
  additionalProperties: false,
  examples: [
    { prompt: 'Write a haiku about streaming.' },
    { prompt: 'Explain SSE in one sentence.', stream: false, max_tokens: 200 },
    {
      system: 'You are terse.',
      messages: [
        { role: 'user', content: 'Name a prime.' },
        { role: 'assistant', content: '7' },
        { role: 'user', content: 'Another one?' },
      ],
    },
  ],
} as const;
// Defaults are documentation here (Ajv runs with useDefaults: false), so `stream` stays optional.
export type QueryBody = FromSchema<typeof QueryBody, { keepDefaultedPropertiesOptional: true }>;

const integer = { type: 'integer' } as const;

export const Usage = {
  type: 'object',
  required: ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'],
  properties: {
    input_tokens: integer,
    output_tokens: integer,
    cache_creation_input_tokens: integer,
    cache_read_input_tokens: integer,
  },
} as const;

export const ErrorBody = {
  type: 'object',
  required: ['error', 'request_id'],
  properties: {
    error: {
      type: 'object',
      required: ['type', 'message'],
      properties: {
        type: { type: 'string', description: 'Machine-readable error type, e.g. rate_limit_error' },
        message: { type: 'string', description: 'Human-readable explanation' },
      },
    },
    request_id: { type: 'string' },
  },
  description: 'Error envelope used by every route',
} as const;

const CostUsd = {
  anyOf: [{ type: 'string' }, { type: 'null' }],
  description:
    'What the answer cost, in US dollars as an exact decimal string (e.g. "0.0195"); null when the model has no known price',
} as const;

export const QueryAnswer = {
  type: 'object',
  required: ['id', 'model', 'text', 'stop_reason', 'usage', 'cost_usd'],
  properties: {
    id: { type: 'string', description: 'The request id (also in X-Request-ID)' },
    model: { type: 'string' },
    text: { type: 'string' },
    stop_reason: { anyOf: [{ type: 'string' }, { type: 'null' }] },
    usage: Usage,
    cost_usd: CostUsd,
  },
} as const;

export const SSE_DESCRIPTION = [
  'A text/event-stream with these events:',
  '- `start` `{"id","model"}` once the upstream answer has begun;',
  '- `delta` `{"text"}` for each piece of text, in order;',
  '- `done` `{"stop_reason","usage","cost_usd"}` last, when the answer is complete (`cost_usd`: a decimal string of US dollars, null when the model has no known price);',
  '- `error` `{"error":{"type","message"},"request_id"}` if the upstream fails mid-answer: the stream then ends **without** `done`.',
  'Comment lines `: keep-alive` are sent during long upstream silences.',
].join('\n');
