import { Type, type Static } from 'typebox';

const NonBlank = { minLength: 1, pattern: '\\S' };

export const ChatMessage = Type.Object(
  {
    role: Type.Union([Type.Literal('user'), Type.Literal('assistant')]),
    content: Type.String({ ...NonBlank, description: 'The text of the turn' }),
  },
  { additionalProperties: false },
);

export const QueryBody = Type.Object(
  {
    prompt: Type.Optional(Type.String({ ...NonBlank, description: 'One user turn. Give either prompt or messages.' })),
    messages: Type.Optional(
      Type.Array(ChatMessage, { minItems: 1, description: 'Multi-turn conversation. Give either prompt or messages.' }),
    ),
    system: Type.Optional(Type.String({ description: 'System prompt' })),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Defaults to ANTHROPIC_MODEL' })),
    max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 128000, description: 'Defaults to ANTHROPIC_MAX_TOKENS' })),
    temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    top_k: Type.Optional(Type.Integer({ minimum: 0 })),
    stop_sequences: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 16 })),
    stream: Type.Optional(Type.Boolean({ default: true, description: 'false: one JSON answer instead of SSE' })),
  },
  {
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
  },
);
export type QueryBody = Static<typeof QueryBody>;

export const Usage = Type.Object({
  input_tokens: Type.Integer(),
  output_tokens: Type.Integer(),
  cache_creation_input_tokens: Type.Integer(),
  cache_read_input_tokens: Type.Integer(),
});

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      type: Type.String({ description: 'Machine-readable error type, e.g. rate_limit_error' }),
      message: Type.String({ description: 'Human-readable explanation' }),
    }),
    request_id: Type.String(),
  },
  { description: 'Error envelope used by every route' },
);

export const QueryAnswer = Type.Object({
  id: Type.String({ description: 'The request id (also in X-Request-ID)' }),
  model: Type.String(),
  text: Type.String(),
  stop_reason: Type.Union([Type.String(), Type.Null()]),
  usage: Usage,
});

export const SSE_DESCRIPTION = [
  'A text/event-stream with these events:',
  '- `start` `{"id","model"}` once the upstream answer has begun;',
  '- `delta` `{"text"}` for each piece of text, in order;',
  '- `done` `{"stop_reason","usage"}` last, when the answer is complete;',
  '- `error` `{"error":{"type","message"},"request_id"}` if the upstream fails mid-answer: the stream then ends **without** `done`.',
  'Comment lines `: keep-alive` are sent during long upstream silences.',
].join('\n');
