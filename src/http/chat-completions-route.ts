import type { FastifyInstance } from 'fastify';
import { MessageAccumulator } from '../anthropic/message-accumulator.ts';
import { ConnectorError } from '../errors.ts';
import { openAIErrorBody } from '../openai/error-body.ts';
import { ChunkTranslator, messageToCompletion } from '../openai/from-anthropic.ts';
import { ChatCompletionRequest } from '../openai/request-schema.ts';
import { toAnthropic, type Problem } from '../openai/to-anthropic.ts';
import { fallbackChain } from '../upstream/fallbacks.ts';
import { collectMessage, streamMessage } from './message-answer.ts';
import { answerRoute, type ApiAdapter, type PipelineDeps, type UpstreamCall } from './pipeline.ts';
import { errorResponses } from './error-responses.ts';

const OpenAIError = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: { type: 'string' },
        type: {
          type: 'string',
          description: 'invalid_request_error, authentication_error, rate_limit_error or server_error',
        },
        param: { anyOf: [{ type: 'string' }, { type: 'null' }] },
        code: {
          type: 'string',
          description: "The service's stable error type, e.g. rate_limit_error, upstream_timeout",
        },
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
        'application/json': {
          schema: {
            type: 'object',
            properties: {},
            additionalProperties: true,
            description: 'chat.completion',
          },
        },
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

interface ChatCall extends UpstreamCall {
  readonly stream: boolean;
  readonly includeUsage: boolean;
}

/** `/v1/chat/completions`: translated to a Messages request, the answer translated back to chunks or a completion. */
const chatAdapter: ApiAdapter<ChatCall> = {
  read(request, config) {
    const translation = toAnthropic(request.body as ChatCompletionRequest, {
      model: config.defaultModel,
      maxTokens: config.defaultMaxTokens,
    });
    if (!translation.ok) throw unsupported(translation.problems);
    const { body, includeUsage } = translation;
    // Always streamed upstream: the read timeout then measures silence, not the length of the answer.
    const bodyFor = (model: string): string => JSON.stringify({ ...body, model, stream: true });
    return {
      upstream: { method: 'POST', path: '/v1/messages', body: bodyFor(body.model) },
      replyHeaders: ignoredFieldsHeader(translation.ignored),
      model: body.model,
      reserveTokens: body.max_tokens,
      fallbacks: { models: fallbackChain(body.model, config.fallbackModels), bodyFor },
      stream: body.stream,
      includeUsage,
    };
  },

  answer(exchange, call, { body }) {
    const { request, record } = exchange;
    const defaults = {
      id: `chatcmpl-${request.id}`,
      model: record.model ?? '',
      created: Math.floor(Date.now() / 1000),
    };
    if (!call.stream) {
      const accumulator = new MessageAccumulator();
      return collectMessage(exchange, body, { onTextLiteral: null, onEvent: accumulator.onEvent }, () =>
        exchange.reply.code(200).send(messageToCompletion(accumulator.message, defaults)),
      );
    }
    return streamMessage(exchange, body, {
      readers: (add) => {
        const translator = new ChunkTranslator(
          (data) => {
            add(`data: ${data}\n\n`);
          },
          defaults,
          call.includeUsage,
        );
        return { onTextLiteral: null, onEvent: translator.onEvent };
      },
      last: (result) =>
        result.outcome !== 'completed' && result.failure
          ? `data: ${JSON.stringify(openAIErrorBody(result.failure.type, result.failure.message))}\n\n`
          : '',
    });
  },
};

/** `POST /v1/chat/completions`, in OpenAI's error shape. */
export function chatCompletionsRoutes(deps: PipelineDeps) {
  return (app: FastifyInstance, _options: unknown, done: () => void): void => {
    answerRoute(app, deps, {
      method: 'POST',
      url: '/v1/chat/completions',
      schema,
      errorShape: 'openai',
      adapter: chatAdapter,
    });
    done();
  };
}
