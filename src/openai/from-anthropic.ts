/**
 * Pure: Anthropic answers → OpenAI chat completion objects. `ChunkTranslator` turns the Messages
 * SSE events into `chat.completion.chunk` data lines as they arrive; `messageToCompletion` turns a
 * whole message into one `chat.completion`; `anthropicModelsToOpenAI` maps the model list.
 * Thinking blocks and other block types OpenAI has no place for are left out.
 */
import {
  emptyUsage,
  mergeUsage,
  parseEventData,
  unparseable,
  type StreamFailure,
  type Usage,
} from '../anthropic/message-stream.ts';
import { textDeltaLiteral } from '../anthropic/text-delta.ts';
import {
  streamFailure,
  type ContentBlockDeltaEvent,
  type ContentBlockStartEvent,
  type MessageDeltaEvent,
  type MessageStartEvent,
  type StreamErrorEvent,
  type WireMessage,
} from '../anthropic/wire.ts';

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string | null; refusal: null; tool_calls?: OpenAIToolCall[] };
    logprobs: null;
    finish_reason: string;
  }[];
  usage: OpenAIUsage;
}

/** What a completion is called before the upstream has named it. */
export interface CompletionDefaults {
  id: string;
  model: string;
  /** Unix seconds. */
  created: number;
}

export function finishReason(stopReason: string | null | undefined): string {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      return 'stop';
  }
}

/** Prompt tokens include the cached ones, as OpenAI counts them. */
export function openAIUsage(usage: Usage): OpenAIUsage {
  const prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens;
  return {
    prompt_tokens: prompt,
    completion_tokens: usage.output_tokens,
    total_tokens: prompt + usage.output_tokens,
    prompt_tokens_details: { cached_tokens: usage.cache_read_input_tokens },
  };
}

const NOT_FINISHED = ',"logprobs":null,"finish_reason":null}]}';

/**
 * Fed Anthropic SSE events (e.g. from `SseDecoder`), emits the `data:` payloads of the OpenAI
 * stream: a role chunk, content and `tool_calls` chunks, the finish chunk, the usage chunk when
 * asked for, and `[DONE]` once the message is complete. An `error` event or unparseable data is
 * returned as a failure and emits nothing: the caller ends the stream with an error instead.
 */
export class ChunkTranslator {
  readonly usage: Usage = emptyUsage();
  stopReason: string | null = null;
  /** `{"id":…,"object":"chat.completion.chunk","created":…,"model":…` */
  private head: string;
  /** `head` + `,"choices":[{"index":0,"delta":` */
  private choiceHead: string;
  /** Anthropic content block index → OpenAI tool call index. */
  private readonly toolIndex = new Map<number, number>();
  private readonly emit: (data: string) => void;
  private readonly includeUsage: boolean;
  private readonly defaults: CompletionDefaults;

  constructor(emit: (data: string) => void, defaults: CompletionDefaults, includeUsage: boolean) {
    this.emit = emit;
    this.defaults = defaults;
    this.includeUsage = includeUsage;
    this.head = '';
    this.choiceHead = '';
    this.name(defaults.id, defaults.model);
  }

  readonly onEvent = (name: string, data: string): StreamFailure | null => {
    if (name === 'ping' || name === 'content_block_stop') return null;
    if (name === 'message_stop') {
      this.finish();
      return null;
    }
    if (name === 'content_block_delta') {
      // Fast path: a compact text delta goes out without being parsed and re-encoded.
      const literal = textDeltaLiteral(data);
      if (literal !== null) {
        if (literal !== '""') this.delta(`{"content":${literal}}`);
        return null;
      }
    }
    const event = parseEventData(data);
    if (event === undefined) return unparseable(name);
    switch (name) {
      case 'content_block_delta':
        this.blockDelta(event as ContentBlockDeltaEvent);
        return null;
      case 'content_block_start':
        this.blockStart(event as ContentBlockStartEvent);
        return null;
      case 'message_start':
        this.start(event as MessageStartEvent);
        return null;
      case 'message_delta': {
        const { delta, usage } = event as MessageDeltaEvent;
        if (delta?.stop_reason) this.stopReason = delta.stop_reason;
        mergeUsage(this.usage, usage);
        return null;
      }
      case 'error':
        return streamFailure(event as StreamErrorEvent);
      default:
        return null;
    }
  };

  private name(id: string, model: string): void {
    this.head = `{"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${this.defaults.created},"model":${JSON.stringify(model)}`;
    this.choiceHead = `${this.head},"choices":[{"index":0,"delta":`;
  }

  private delta(json: string): void {
    this.emit(this.choiceHead + json + NOT_FINISHED);
  }

  private start(event: MessageStartEvent): void {
    const message = event.message;
    this.name(message?.id ?? this.defaults.id, message?.model ?? this.defaults.model);
    mergeUsage(this.usage, message?.usage);
    this.delta('{"role":"assistant","content":""}');
  }

  private blockStart(event: ContentBlockStartEvent): void {
    const block = event.content_block;
    if (block?.type === 'text' && block.text) this.delta(`{"content":${JSON.stringify(block.text)}}`);
    if (block?.type !== 'tool_use' || event.index === undefined) return;
    const index = this.toolIndex.size;
    this.toolIndex.set(event.index, index);
    const call = `{"index":${index},"id":${JSON.stringify(block.id ?? '')},"type":"function","function":{"name":${JSON.stringify(block.name ?? '')},"arguments":""}}`;
    this.delta(`{"tool_calls":[${call}]}`);
  }

  private blockDelta(event: ContentBlockDeltaEvent): void {
    const delta = event.delta;
    if (delta?.type === 'text_delta' && delta.text) {
      this.delta(`{"content":${JSON.stringify(delta.text)}}`);
    } else if (delta?.type === 'input_json_delta' && delta.partial_json) {
      const index = this.toolIndex.get(event.index ?? -1);
      if (index !== undefined)
        this.delta(
          `{"tool_calls":[{"index":${index},"function":{"arguments":${JSON.stringify(delta.partial_json)}}}]}`,
        );
    }
  }

  private finish(): void {
    this.emit(`${this.choiceHead}{},"logprobs":null,"finish_reason":"${finishReason(this.stopReason)}"}]}`);
    if (this.includeUsage)
      this.emit(`${this.head},"choices":[],"usage":${JSON.stringify(openAIUsage(this.usage))}}`);
    this.emit('[DONE]');
  }
}

/** One whole Anthropic message (non-streamed, or assembled from its stream) → one `chat.completion`. */
export function messageToCompletion(message: WireMessage, defaults: CompletionDefaults): ChatCompletion {
  const texts: string[] = [];
  const toolCalls: OpenAIToolCall[] = [];
  for (const block of message.content ?? []) {
    if (block.type === 'text' && typeof block.text === 'string') texts.push(block.text);
    else if (block.type === 'tool_use') {
      toolCalls.push({
        id: block.id ?? '',
        type: 'function',
        function: { name: block.name ?? '', arguments: JSON.stringify(block.input ?? {}) },
      });
    }
  }
  const usage = emptyUsage();
  mergeUsage(usage, message.usage);
  const text = texts.join('');
  const reply: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    content: text === '' && toolCalls.length > 0 ? null : text,
    refusal: null,
  };
  if (toolCalls.length > 0) reply.tool_calls = toolCalls;
  return {
    id: message.id ?? defaults.id,
    object: 'chat.completion',
    created: defaults.created,
    model: message.model ?? defaults.model,
    choices: [{ index: 0, message: reply, logprobs: null, finish_reason: finishReason(message.stop_reason) }],
    usage: openAIUsage(usage),
  };
}

interface OpenAIModel {
  id: string;
  object: 'model';
  created: number;
  owned_by: 'anthropic';
}

/** Anthropic's `{data:[{id, created_at, display_name}]}` → OpenAI's `{object:'list', data:[…]}`. */
export function anthropicModelsToOpenAI(body: unknown): { object: 'list'; data: OpenAIModel[] } {
  const list = (body as { data?: unknown } | null)?.data;
  const data: OpenAIModel[] = [];
  for (const model of Array.isArray(list) ? (list as unknown[]) : []) {
    const { id, created_at: createdAt } = (model ?? {}) as { id?: unknown; created_at?: unknown };
    if (typeof id !== 'string') continue;
    const ms = typeof createdAt === 'string' ? Date.parse(createdAt) : Number.NaN;
    data.push({
      id,
      object: 'model',
      created: Number.isFinite(ms) ? Math.floor(ms / 1000) : 0,
      owned_by: 'anthropic',
    });
  }
  return { object: 'list', data };
}
