/**
 * The OpenAI chat completions request as this service accepts it: the types of the fields it acts
 * on are checked; any other field is allowed through validation, so that what real SDKs send is
 * never refused for its shape (`to-anthropic.ts` decides what is ignored and what is unsupported).
 * Optional fields may be `null`, as the SDKs and many clients send them.
 */
import { Type, type Static, type TSchema } from 'typebox';

const Nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));
const Open = { additionalProperties: true } as const;

const ContentPart = Type.Object(
  {
    type: Type.String({ description: 'text or image_url (others are refused with 400)' }),
    text: Type.Optional(Type.String()),
    refusal: Type.Optional(Type.String()),
    image_url: Type.Optional(Type.Object({ url: Type.String(), detail: Type.Optional(Type.String()) }, Open)),
  },
  Open,
);

const ToolCall = Type.Object(
  {
    id: Type.String(),
    type: Type.String(),
    function: Type.Optional(Type.Object({ name: Type.String(), arguments: Type.String() }, Open)),
  },
  Open,
);

const Message = Type.Object(
  {
    role: Type.Enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
    content: Nullable(Type.Union([Type.String(), Type.Array(ContentPart)])),
    name: Nullable(Type.String()),
    tool_calls: Nullable(Type.Array(ToolCall)),
    tool_call_id: Nullable(Type.String()),
  },
  Open,
);

const Tool = Type.Object(
  {
    type: Type.String(),
    function: Type.Optional(
      Type.Object(
        {
          name: Type.String({ minLength: 1 }),
          description: Nullable(Type.String()),
          parameters: Nullable(Type.Object({}, Open)),
          strict: Nullable(Type.Boolean()),
        },
        Open,
      ),
    ),
  },
  Open,
);

const ToolChoice = Type.Union([
  Type.Enum(['none', 'auto', 'required']),
  Type.Object({ type: Type.String(), function: Type.Optional(Type.Object({ name: Type.String() }, Open)) }, Open),
]);

export const ChatCompletionRequest = Type.Object(
  {
    model: Nullable(Type.String({ minLength: 1, maxLength: 200, description: 'Passed to Anthropic as is; default ANTHROPIC_MODEL' })),
    messages: Type.Array(Message, { minItems: 1 }),
    max_tokens: Nullable(Type.Integer({ minimum: 1 })),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1, description: 'Wins over max_tokens; default ANTHROPIC_MAX_TOKENS' })),
    temperature: Nullable(Type.Number({ minimum: 0, maximum: 2, description: 'Capped at 1 for Anthropic' })),
    top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
    stop: Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 16 })])),
    stream: Nullable(Type.Boolean()),
    stream_options: Nullable(Type.Object({ include_usage: Nullable(Type.Boolean()) }, Open)),
    tools: Nullable(Type.Array(Tool)),
    tool_choice: Nullable(ToolChoice),
    parallel_tool_calls: Nullable(Type.Boolean()),
    user: Nullable(Type.String()),
    safety_identifier: Nullable(Type.String()),
    n: Nullable(Type.Integer({ minimum: 1 })),
    logprobs: Nullable(Type.Boolean()),
    top_logprobs: Nullable(Type.Integer({ minimum: 0 })),
    response_format: Nullable(Type.Object({ type: Type.String() }, Open)),
    modalities: Nullable(Type.Array(Type.String())),
  },
  {
    ...Open,
    examples: [
      { model: 'claude-sonnet-5', messages: [{ role: 'user', content: 'Say hello.' }] },
      { model: 'claude-sonnet-5', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Count to 3.' }] },
    ],
  },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;
export type ChatMessage = ChatCompletionRequest['messages'][number];
export type ChatContentPart = Exclude<NonNullable<ChatMessage['content']>, string>[number];
export type ChatTool = NonNullable<ChatCompletionRequest['tools']>[number];
export type ChatToolChoice = NonNullable<ChatCompletionRequest['tool_choice']>;
