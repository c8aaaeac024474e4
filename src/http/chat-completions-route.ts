import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MessageAccumulator } from '../anthropic/message-accumulator.ts';
import type { Config } from '../config.ts';
import { ConnectorError } from '../errors.ts';
import { openAIErrorBody } from '../openai/error-body.ts';
import { ChunkTranslator, messageToCompletion, type CompletionDefaults } from '../openai/from-anthropic.ts';
import { ChatCompletionRequest } from '../openai/request-schema.ts';
import { toAnthropic, type Problem } from '../openai/to-anthropic.ts';
import type { UpstreamBody } from '../upstream/upstream-body.ts';
import { fallbackChain, openWithFallbacks } from '../upstream/fallbacks.ts';
import { mapUpstreamStatus } from '../upstream/map-status.ts';
import { abortOnClientClose } from './client-abort.ts';
import { brokenAnswer, pumpMessageStream, type PumpResult } from './message-pump.ts';
import { errorResponses, type RouteDeps } from './route-deps.ts';
import { admit } from './guard-hooks.ts';
import { setServedModel } from './served-model.ts';
import { pendingHeaders, SSE_HEADERS, SseBatch } from './sse-writer.ts';

const OpenAIError = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: { type: 'string' },
        type: { type: 'string', description: 'invalid_request_error, authentication_error, rate_limit_error or server_error' },
        param: { anyOf: [{ type: 'string' }, { type: 'null' }] },
        code: { type: 'string', description: "The service's stable error type, e.g. rate_limit_error, upstream_timeout" },
      },
    },
  },
} as const;
const STREAM_DESCRIPTION =
  'OpenAI-style SSE: `data: <chat.completion.chunk>` lines, then `data: [DONE]`. A failure after the first byte is one `data: {"error":{…}}` line and the stream ends without `[DONE]`.';

const schema = {
  summary: 'OpenAI-compatible chat completions, answered by Claude',
  description: `Point the OpenAI SDKs at \`/v1\`. Unsupported values (n > 1, logprobs, JSON response formats, audio) get a 400; other unknown or unsupported fields are ignored and named in \`x-ignored-fields\`. ${STREAM_DESCRIPTION}`,
  tags: ['OpenAI-compatible'],
  body: ChatCompletionRequest,
  response: {
    200: {
      description: 'A chat.completion object, or with "stream": true an SSE stream of chunks',
      content: {
        'application/json': { schema: { type: 'object', properties: {}, additionalProperties: true, description: 'chat.completion' } },
        'text/event-stream': { schema: { type: 'string', description: STREAM_DESCRIPTION } },
      },
    },
    ...errorResponses(OpenAIError, 'Invalid or unsupported request, or the upstream rejected it'),
  },
};

const SAFE_FIELD_NAME = /^[\w.[\]-]{1,64}$/;

/** `x-ignored-fields`, listing at most 20 names that are safe to put in a header. */
export function ignoredFieldsHeader(names: readonly string[]): Record<string, string> {
  const safe = names.filter((name) => SAFE_FIELD_NAME.test(name)).slice(0, 20);
  return safe.length > 0 ? { 'x-ignored-fields': safe.join(', ') } : {};
}

function unsupported(problems: readonly Problem[]): ConnectorError {
  const message = problems.map((p) => `${p.param}: ${p.message}`).join('; ');
  return new ConnectorError('invalid_request_error', 400, message, { param: problems[0]?.param });
}

/**
 * Once the upstream has been tried, the service's retries are the only ones: its error answer says
 * `x-should-retry: false` so that an SDK in front does not retry a 502 or 503 once more per attempt.
 */
function noClientRetry(reply: FastifyReply, error: unknown): unknown {
  void reply.header('x-should-retry', 'false');
  return error;
}

/** The upstream answer that has begun, and what the translation decided. */
interface Answer {
  body: UpstreamBody;
  defaults: CompletionDefaults;
  includeUsage: boolean;
}

/** Streams chunks as the upstream answer arrives; the status (200) was decided when it began. */
async function relay(reply: FastifyReply, answer: Answer, config: Config): Promise<PumpResult> {
  const { request } = reply;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { ...pendingHeaders(reply), ...SSE_HEADERS });
  request.record.markStreaming();
  const batch = new SseBatch(res, config.keepAliveIntervalMs);
  const translator = new ChunkTranslator(
    (data) => {
      batch.add(`data: ${data}\n\n`);
    },
    answer.defaults,
    answer.includeUsage,
  );
  const result = await pumpMessageStream(answer.body, { onTextLiteral: null, onEvent: translator.onEvent, ...batch.hooks }, config);
  if (result.outcome === 'completed') batch.end();
  else if (result.failure) batch.end(`data: ${JSON.stringify(openAIErrorBody(result.failure.type, result.failure.message))}\n\n`);
  else batch.end();
  return result;
}

/** Collects the whole answer (streamed upstream), then sends one chat.completion. */
async function collect(reply: FastifyReply, answer: Answer, config: Config): Promise<PumpResult> {
  const accumulator = new MessageAccumulator();
  const hooks = { onTextLiteral: null, onEvent: accumulator.onEvent, clientGone: () => reply.raw.destroyed };
  const result = await pumpMessageStream(answer.body, hooks, config);
  if (result.outcome === 'completed') await reply.code(200).send(messageToCompletion(accumulator.message, answer.defaults));
  else if (result.failure) throw noClientRetry(reply, brokenAnswer(result.failure));
  return result;
}

async function handle(request: FastifyRequest, reply: FastifyReply, { config, upstream, guard, metrics }: RouteDeps): Promise<void> {
  const translation = toAnthropic(request.body as ChatCompletionRequest, { model: config.defaultModel, maxTokens: config.defaultMaxTokens });
  if (!translation.ok) throw unsupported(translation.problems);
  const { body, includeUsage } = translation;
  void reply.headers(ignoredFieldsHeader(translation.ignored));
  const { record } = request;
  record.model = body.model;
  const signal = abortOnClientClose(reply.raw);
  await admit(guard, request, reply, body.max_tokens, signal, metrics);
  // Always streamed upstream: the read timeout then measures silence, not the length of the answer.
  const bodyFor = (model: string): string => JSON.stringify({ ...body, model, stream: true });
  const fallbacks = { models: fallbackChain(body.model, config.fallbackModels), bodyFor };
  const opened = await openWithFallbacks(upstream, { method: 'POST', path: '/v1/messages', body: bodyFor(body.model), signal }, record, fallbacks).catch(
    (error: unknown) => {
      throw noClientRetry(reply, error);
    },
  );
  if (!opened.ok) throw noClientRetry(reply, mapUpstreamStatus(opened.statusCode, opened.headers, opened.errorBody));
  const served = record.model; // the requested model, or the fallback that answered
  setServedModel(reply, served);
  const defaults = { id: `chatcmpl-${request.id}`, model: served, created: Math.floor(Date.now() / 1000) };
  const answer: Answer = { body: opened.body, defaults, includeUsage };
  const result = body.stream ? await relay(reply, answer, config) : await collect(reply, answer, config);
  record.finish(result);
}

export function registerChatCompletionsRoute(app: FastifyInstance, options: RouteDeps): void {
  app.post('/v1/chat/completions', { schema, config: { errorShape: 'openai', guarded: true } }, (request, reply) => handle(request, reply, options));
}
