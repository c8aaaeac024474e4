/**
 * The OpenAI chat completions request as this service accepts it: the types of the fields it acts
 * on are checked; any other field is allowed through validation, so that what real SDKs send is
 * never refused for its shape (`to-anthropic.ts` decides what is ignored and what is unsupported).
 * Optional fields may be `null`, as the SDKs and many clients send them.
 */
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';

/** `schema` or null (such fields are never listed in `required`). */
const nullable = <const S extends JSONSchema>(schema: S) => ({ anyOf: [schema, { type: 'null' }] }) as const;
const string = { type: 'string' } as const;
const boolean = { type: 'boolean' } as const;

const ContentPart = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { type: 'string', description: 'text or image_url (others are refused with 400)' },
    text: string,
    refusal: string,
    image_url: {
      type: 'object',
      required: ['url'],
      properties: { url: string, detail: string },
      additionalProperties: true,
    },
  },
  additionalProperties: true,
} as const;

const ToolCall = {
  type: 'object',
  required: ['id', 'type'],
  properties: {
    id: string,
    type: string,
    function: {
      type: 'object',
      required: ['name', 'arguments'],
      properties: { name: string, arguments: string },
      additionalProperties: true,
    },
  },
  additionalProperties: true,
} as const;

const Message = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'] },
    content: nullable({ anyOf: [string, { type: 'array', items: ContentPart }] }),
    name: nullable(string),
    tool_calls: nullable({ type: 'array', items: ToolCall }),
    tool_call_id: nullable(string),
  },
  additionalProperties: true,
} as const;

const Tool = {
  type: 'object',
  required: ['type'],
  properties: {
    type: string,
    function: {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', minLength: 1 },
        description: nullable(string),
        parameters: nullable({ type: 'object', properties: {}, additionalProperties: true }),
        strict: nullable(boolean),
      },
      additionalProperties: true,
    },
  },
  additionalProperties: true,
} as const;

const ToolChoice = {
  anyOf: [
    { enum: ['none', 'auto', 'required'] },
    {
      type: 'object',
      required: ['type'],
      properties: {
        type: string,
        function: {
          type: 'object',
          required: ['name'],
          properties: { name: string },
          additionalProperties: true,
        },
      },
      additionalProperties: true,
    },
  ],
} as const;

export const ChatCompletionRequest = {
  type: 'object',
  required: ['messages'],
  properties: {
    model: nullable({
      type: 'string',
      minLength: 1,
      maxLength: 200,
      description: 'Passed to Anthropic as is; default ANTHROPIC_MODEL',
    }),
    messages: { type: 'array', items: Message, minItems: 1 },
    max_tokens: nullable({ type: 'integer', minimum: 1 }),
    max_completion_tokens: nullable({
      type: 'integer',
      minimum: 1,
      description: 'Wins over max_tokens; default ANTHROPIC_MAX_TOKENS',
    }),
    temperature: nullable({
      type: 'number',
      minimum: 0,
      maximum: 2,
      description: 'Capped at 1 for Anthropic',
    }),
    top_p: nullable({ type: 'number', minimum: 0, maximum: 1 }),
    stop: nullable({ anyOf: [string, { type: 'array', items: string, maxItems: 16 }] }),
    stream: nullable(boolean),
    stream_options: nullable({
      type: 'object',
      properties: { include_usage: nullable(boolean) },
      additionalProperties: true,
    }),
    tools: nullable({ type: 'array', items: Tool }),
    tool_choice: nullable(ToolChoice),
    parallel_tool_calls: nullable(boolean),
    user: nullable(string),
    safety_identifier: nullable(string),
    n: nullable({ type: 'integer', minimum: 1 }),
    logprobs: nullable(boolean),
    top_logprobs: nullable({ type: 'integer', minimum: 0 }),
    response_format: nullable({
      type: 'object',
      required: ['type'],
      properties: { type: string },
      additionalProperties: true,
    }),
    modalities: nullable({ type: 'array', items: string }),
  },
  additionalProperties: true,
  examples: [
    { model: 'claude-sonnet-5', messages: [{ role: 'user', content: 'Say hello.' }] },
    {
      model: 'claude-sonnet-5',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Count to 3.' }],
    },
  ],
} as const;
export type ChatCompletionRequest = FromSchema<typeof ChatCompletionRequest>;
export type ChatMessage = ChatCompletionRequest['messages'][number];
export type ChatContentPart = Exclude<NonNullable<ChatMessage['content']>, string>[number];
export type ChatTool = NonNullable<ChatCompletionRequest['tools']>[number];
export type ChatToolChoice = NonNullable<ChatCompletionRequest['tool_choice']>;
