/**
 * Pure: an OpenAI chat completions request → the body of an Anthropic Messages request, or the list
 * of what cannot be honoured. Values that would change the answer's meaning if dropped (n > 1,
 * logprobs, JSON response formats, audio, …) are problems (400); other fields Anthropic has no use
 * for (seed, penalties, store, …) are ignored and named, so the caller can tell the client.
 */
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../json-depth.ts';
import type {
  ChatCompletionRequest,
  ChatContentPart,
  ChatMessage,
  ChatTool,
  ChatToolChoice,
} from './request-schema.ts';

export interface Problem {
  /** The request field at fault, e.g. `n` or `messages[2].content[0]`. */
  param: string;
  message: string;
}

export type Block = Record<string, unknown>;

export interface Turn {
  role: 'user' | 'assistant';
  content: string | Block[];
}

export interface AnthropicTool {
  name: string;
  description?: string;
  input_schema: object;
}

export type AnthropicToolChoice =
  | { type: 'auto' | 'any' | 'none'; disable_parallel_tool_use?: boolean }
  | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean };

export interface AnthropicRequest {
  model: string;
  max_tokens: number;
  messages: Turn[];
  stream: boolean;
  system?: string;
  temperature?: number;
  top_p?: number;
  stop_sequences?: string[];
  tools?: AnthropicTool[];
  tool_choice?: AnthropicToolChoice;
  metadata?: { user_id: string };
}

export type Translation =
  | { ok: true; body: AnthropicRequest; includeUsage: boolean; ignored: string[] }
  | { ok: false; problems: Problem[] };

export interface RequestDefaults {
  model: string;
  maxTokens: number;
}

/** Top-level fields acted on (mapped, or checked and honoured), hence never reported as ignored. */
const HANDLED = new Set([
  'model',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'stop',
  'stream',
  'stream_options',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'user',
  'safety_identifier',
  'n',
  'modalities',
]);

const EMPTY_SCHEMA = { type: 'object', properties: {} };
const DATA_URL = /^data:([^;,]+)(?:;[^;,]*)*;base64,/;

export function toAnthropic(request: ChatCompletionRequest, defaults: RequestDefaults): Translation {
  const problems = unsupportedValues(request);
  const { system, turns } = convertMessages(request.messages, problems);
  if (turns.length === 0)
    problems.push({ param: 'messages', message: 'at least one user, assistant or tool message is needed' });
  const hasTools = request.tools != null && request.tools.length > 0;
  const body: AnthropicRequest = {
    model: request.model ?? defaults.model,
    max_tokens: request.max_completion_tokens ?? request.max_tokens ?? defaults.maxTokens,
    messages: turns,
    stream: request.stream === true,
  };
  if (system !== '') body.system = system;
  if (request.temperature != null) body.temperature = Math.min(request.temperature, 1);
  if (request.top_p != null) body.top_p = request.top_p;
  if (request.stop != null)
    body.stop_sequences = typeof request.stop === 'string' ? [request.stop] : request.stop;
  if (body.stop_sequences?.length === 0) delete body.stop_sequences;
  if (hasTools) {
    body.tools = convertTools(request.tools ?? [], problems);
    const choice = convertToolChoice(request.tool_choice, request.parallel_tool_calls, problems);
    if (choice) body.tool_choice = choice;
  }
  const userId = request.user ?? request.safety_identifier;
  if (userId != null) body.metadata = { user_id: userId };
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    body,
    includeUsage: request.stream_options?.include_usage === true,
    ignored: ignoredFields(request, hasTools),
  };
}

function unsupportedValues(request: ChatCompletionRequest): Problem[] {
  const problems: Problem[] = [];
  const extra = request as Record<string, unknown>;
  const refuse = (param: string, message: string): void => {
    problems.push({ param, message });
  };
  if (request.n != null && request.n > 1)
    refuse('n', 'only one choice per request is supported (n must be 1)');
  if (request.logprobs === true)
    refuse('logprobs', 'log probabilities are not available from Anthropic models');
  if (request.top_logprobs != null && request.top_logprobs > 0)
    refuse('top_logprobs', 'log probabilities are not available from Anthropic models');
  const format = request.response_format?.type;
  if (format !== undefined && format !== 'text')
    refuse('response_format', `"${format}" is not supported; ask for JSON in the prompt instead`);
  if (request.modalities?.some((m) => m !== 'text')) refuse('modalities', 'only "text" is supported');
  if (extra.audio != null) refuse('audio', 'audio output is not supported');
  if (extra.functions != null || extra.function_call != null)
    refuse(
      'functions',
      'legacy function calling (functions, function_call) is not supported; use tools and tool_choice',
    );
  if (extra.web_search_options != null) refuse('web_search_options', 'web search is not supported');
  return problems;
}

function ignoredFields(request: ChatCompletionRequest, hasTools: boolean): string[] {
  const ignored = Object.entries(request)
    .filter(([name, value]) => value != null && !HANDLED.has(name))
    .map(([name]) => name);
  if (!hasTools)
    ignored.push(
      ...['tool_choice', 'parallel_tool_calls'].filter(
        (name) => (request as Record<string, unknown>)[name] != null,
      ),
    );
  if (request.tools?.some((tool) => tool.function?.strict === true)) ignored.push('tools[].function.strict');
  return ignored;
}

// ---------------------------------------------------------------------------------------------
// Messages

function convertMessages(
  messages: readonly ChatMessage[],
  problems: Problem[],
): { system: string; turns: Turn[] } {
  const system: string[] = [];
  const turns: Turn[] = [];
  messages.forEach((message, i) => {
    const at = `messages[${i}]`;
    switch (message.role) {
      case 'system':
      case 'developer': {
        const text = textOf(message.content ?? '', `${at}.content`, problems);
        if (text !== '') system.push(text);
        return;
      }
      case 'user':
        appendTurn(turns, 'user', userContent(message.content, at, problems));
        return;
      case 'assistant':
        appendTurn(turns, 'assistant', assistantContent(message, at, problems));
        return;
      case 'tool':
        appendTurn(turns, 'user', [toolResult(message, at, problems)]);
        return;
      case 'function':
        problems.push({
          param: `${at}.role`,
          message: 'role "function" (legacy function calling) is not supported; use tools',
        });
        return;
    }
  });
  return { system: system.join('\n\n'), turns };
}

/** Anthropic wants alternating turns: consecutive messages of one role become one turn. */
function appendTurn(turns: Turn[], role: Turn['role'], content: string | Block[]): void {
  const last = turns.at(-1);
  if (last?.role === role) last.content = [...asBlocks(last.content), ...asBlocks(content)];
  else turns.push({ role, content });
}

function asBlocks(content: string | Block[]): Block[] {
  if (typeof content !== 'string') return content;
  return content === '' ? [] : [{ type: 'text', text: content }];
}

/** Text of a string or of text-only parts (system, developer and tool messages). */
function textOf(content: string | ChatContentPart[], at: string, problems: Problem[]): string {
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      if (part.type === 'text' && part.text !== undefined) return part.text;
      problems.push({
        param: `${at}[${j}]`,
        message: `only text parts are allowed here, not "${part.type}"`,
      });
      return '';
    })
    .join('');
}

function userContent(content: ChatMessage['content'], at: string, problems: Problem[]): string | Block[] {
  if (content == null) {
    problems.push({ param: `${at}.content`, message: 'a user message needs content' });
    return '';
  }
  if (typeof content === 'string') return content;
  return content.map((part, j) => partBlock(part, `${at}.content[${j}]`, problems));
}

function partBlock(part: ChatContentPart, at: string, problems: Problem[]): Block {
  if (part.type === 'text' && part.text !== undefined) return { type: 'text', text: part.text };
  if (part.type === 'image_url' && part.image_url !== undefined)
    return imageBlock(part.image_url.url, `${at}.image_url.url`, problems);
  problems.push({
    param: at,
    message: `content part type "${part.type}" is not supported (use text or image_url)`,
  });
  return {};
}

/** `data:` URLs become base64 image blocks; http(s) URLs are fetched by Anthropic. */
function imageBlock(url: string, at: string, problems: Problem[]): Block {
  const match = DATA_URL.exec(url.slice(0, 256));
  if (match)
    return {
      type: 'image',
      source: { type: 'base64', media_type: match[1], data: url.slice(match[0].length) },
    };
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  problems.push({ param: at, message: 'an image URL must be a base64 data: URL or an http(s) URL' });
  return {};
}

function assistantContent(message: ChatMessage, at: string, problems: Problem[]): string | Block[] {
  const text =
    message.content == null
      ? ''
      : typeof message.content === 'string'
        ? message.content
        : assistantText(message.content, at, problems);
  const calls = message.tool_calls ?? [];
  if (calls.length === 0) return text;
  return [
    ...asBlocks(text),
    ...calls.map((call, j) => toolUseBlock(call, `${at}.tool_calls[${j}]`, problems)),
  ];
}

function assistantText(parts: ChatContentPart[], at: string, problems: Problem[]): string {
  return parts
    .map((part, j) => {
      if (part.type === 'text' && part.text !== undefined) return part.text;
      if (part.type === 'refusal' && part.refusal !== undefined) return part.refusal;
      problems.push({
        param: `${at}.content[${j}]`,
        message: `only text and refusal parts are allowed here, not "${part.type}"`,
      });
      return '';
    })
    .join('');
}

function toolUseBlock(
  call: NonNullable<ChatMessage['tool_calls']>[number],
  at: string,
  problems: Problem[],
): Block {
  if (call.type !== 'function' || call.function === undefined) {
    problems.push({
      param: `${at}.type`,
      message: `tool call type "${call.type}" is not supported (only function)`,
    });
    return {};
  }
  return {
    type: 'tool_use',
    id: call.id,
    name: call.function.name,
    input: parseArguments(call.function.arguments, `${at}.function.arguments`, problems),
  };
}

function parseArguments(text: string, at: string, problems: Problem[]): unknown {
  if (text.trim() === '') return {};
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    problems.push({
      param: at,
      message: `tool call arguments nest objects and arrays deeper than ${MAX_JSON_DEPTH} levels`,
    });
    return {};
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value;
  } catch {
    // reported below
  }
  problems.push({ param: at, message: 'tool call arguments must be a JSON object' });
  return {};
}

function toolResult(message: ChatMessage, at: string, problems: Problem[]): Block {
  if (message.tool_call_id == null)
    problems.push({ param: `${at}.tool_call_id`, message: 'a tool message needs tool_call_id' });
  const content = message.content ?? '';
  const result =
    typeof content === 'string'
      ? content
      : [{ type: 'text', text: textOf(content, `${at}.content`, problems) }];
  return { type: 'tool_result', tool_use_id: message.tool_call_id ?? '', content: result };
}

// ---------------------------------------------------------------------------------------------
// Tools

function convertTools(tools: readonly ChatTool[], problems: Problem[]): AnthropicTool[] {
  return tools.map((tool, j) => {
    const fn = tool.function;
    if (tool.type !== 'function' || fn === undefined) {
      problems.push({
        param: `tools[${j}].type`,
        message: `tool type "${tool.type}" is not supported (only function)`,
      });
      return { name: '', input_schema: EMPTY_SCHEMA };
    }
    const params = fn.parameters;
    const converted: AnthropicTool = {
      name: fn.name,
      input_schema: params != null && Object.keys(params).length > 0 ? params : EMPTY_SCHEMA,
    };
    if (fn.description != null) converted.description = fn.description;
    return converted;
  });
}

function convertToolChoice(
  choice: ChatToolChoice | null | undefined,
  parallel: boolean | null | undefined,
  problems: Problem[],
): AnthropicToolChoice | undefined {
  let converted: AnthropicToolChoice | undefined;
  if (choice === 'none') return { type: 'none' };
  if (choice === 'auto') converted = { type: 'auto' };
  else if (choice === 'required') converted = { type: 'any' };
  else if (choice != null) {
    if (choice.type !== 'function' || choice.function === undefined) {
      problems.push({ param: 'tool_choice', message: `type "${choice.type}" is not supported` });
      return undefined;
    }
    converted = { type: 'tool', name: choice.function.name };
  }
  if (parallel !== false) return converted;
  return { ...(converted ?? { type: 'auto' }), disable_parallel_tool_use: true };
}
