import type { FastifyInstance } from 'fastify';
import { buildMessagesBody } from '../anthropic/build-request.ts';
import type { Usage } from '../anthropic/message-stream.ts';
import { ConnectorError, errorEnvelope } from '../errors.ts';
import { usdString } from '../pricing/cost.ts';
import { fallbackChain } from '../upstream/fallbacks.ts';
import { collectMessage, streamMessage, type StreamFraming } from './message-answer.ts';
import { answerRoute, type ApiAdapter, type PipelineDeps, type UpstreamCall } from './pipeline.ts';
import { errorResponses } from './error-responses.ts';
import { ErrorBody, QueryAnswer, QueryBody, SSE_DESCRIPTION } from './query-schema.ts';
import type { AnswerMode, RequestRecord } from './request-record.ts';
import { sseEvent } from './sse-writer.ts';

const schema = {
  summary: 'Ask Claude; the answer streams back as Server-Sent Events',
  description: `Send \`prompt\` (or \`messages\`). By default the answer streams as SSE. ${SSE_DESCRIPTION}\n\nWith \`"stream": false\` the answer is one JSON object.\n\nWith \`"resumable": true\` every event has an \`id:\` and the answer survives a lost connection (resume at /llm/answers/{id}/events); with \`"background": true\` the answer is 202 at once and generated to its end.`,
  body: QueryBody,
  response: {
    200: {
      description: 'The answer: SSE by default, JSON with "stream": false',
      headers: {
        'x-request-id': {
          type: 'string',
          description: 'The request id (also in the start event and the log line)',
        },
        'x-served-model': {
          type: 'string',
          description: 'The model that served the answer: the requested one, or a FALLBACK_MODELS model',
        },
        'x-answer-id': {
          type: 'string',
          description:
            'With "resumable": true, the answer\'s id (also `answer_id` in the start event): resume at /llm/answers/{id}/events',
        },
      },
      content: {
        'text/event-stream': { schema: { type: 'string', description: SSE_DESCRIPTION } },
        'application/json': { schema: QueryAnswer },
      },
    },
    202: {
      description:
        'With "background": true: the answer is being generated; follow it at /llm/answers/{id}/events, poll GET /llm/answers/{id}',
      headers: {
        location: { type: 'string', description: '/llm/answers/{id}' },
        'x-answer-id': { type: 'string', description: 'The answer id' },
      },
      type: 'object',
      required: ['id', 'status', 'model'],
      properties: {
        id: { type: 'string', description: 'The answer id (made by the service)' },
        status: { type: 'string', enum: ['in_progress'] },
        model: { type: 'string' },
      },
    },
    ...errorResponses(ErrorBody, 'Invalid request, or the upstream rejected it'),
  },
};

function usageJson(usage: Usage): string {
  return `{"input_tokens":${usage.input_tokens},"output_tokens":${usage.output_tokens},"cache_creation_input_tokens":${usage.cache_creation_input_tokens},"cache_read_input_tokens":${usage.cache_read_input_tokens}}`;
}

/**
 * The answer's cost as `cost_usd` shows it (a decimal string of dollars, null when unpriced); the
 * record keeps it, so that the log line and the budgets use the same figure.
 */
function costUsd(record: RequestRecord, usage: Usage): string | null {
  record.usage = usage;
  const cost = record.cost();
  return cost === null || cost === undefined ? null : usdString(cost);
}

/** The `done` event's data, the same for a plain and a resumable stream. */
function doneData(record: RequestRecord, stopReason: string | null, usage: Usage): string {
  const cost = JSON.stringify(costUsd(record, usage));
  return `{"stop_reason":${JSON.stringify(stopReason)},"usage":${usageJson(usage)},"cost_usd":${cost}}`;
}

interface QueryCall extends UpstreamCall {
  readonly model: string;
  readonly stream: boolean;
}

function answerModeOf(input: QueryBody): AnswerMode | undefined {
  if (input.background === true) return 'background';
  if (input.resumable !== true) return undefined;
  if (input.stream === false) {
    throw new ConnectorError(
      'invalid_request_error',
      400,
      '"resumable" needs a streamed answer: leave out "stream": false, or ask with "background": true and read the answer when it is done',
    );
  }
  return 'resumable';
}

/** `/llm/query`: the service's own API. Events `start`, `delta`, `done` or `error`; or one JSON answer. */
const queryAdapter: ApiAdapter<QueryCall> = {
  read(request, config) {
    const input = request.body as QueryBody;
    if ((input.prompt === undefined) === (input.messages === undefined)) {
      throw new ConnectorError('invalid_request_error', 400, 'Give exactly one of "prompt" or "messages"');
    }
    const model = input.model ?? config.defaultModel;
    const defaults = { model: config.defaultModel, maxTokens: config.defaultMaxTokens };
    const answerMode =
      input.resumable === undefined && input.background === undefined ? undefined : answerModeOf(input);
    return {
      answerMode,
      upstream: { method: 'POST', path: '/v1/messages', body: buildMessagesBody(input, defaults) },
      model,
      stream: input.stream !== false,
      reserveTokens: input.max_tokens ?? config.defaultMaxTokens,
      fallbacks: {
        models: fallbackChain(model, config.fallbackModels),
        bodyFor: (next) => buildMessagesBody({ ...input, model: next }, defaults),
      },
    };
  },

  answer(exchange, call, { body }) {
    const { request, record } = exchange;
    const served = record.model ?? ''; // the requested model, or the fallback that answered
    if (!call.stream) {
      const parts: string[] = [];
      return collectMessage(
        exchange,
        body,
        { onTextLiteral: (literal) => parts.push(JSON.parse(literal) as string) },
        ({ reader }) =>
          exchange.reply.code(200).send({
            id: request.id,
            model: reader.model ?? served,
            text: parts.join(''),
            stop_reason: reader.stopReason,
            usage: reader.usage,
            cost_usd: costUsd(record, reader.usage),
          }),
      );
    }
    const framing: StreamFraming = {
      first: sseEvent('start', JSON.stringify({ id: request.id, model: served })),
      readers: (add) => ({
        onTextLiteral: (literal) => {
          add(`event: delta\ndata: {"text":${literal}}\n\n`);
        },
      }),
      last: (result) => {
        if (result.outcome === 'completed')
          return sseEvent('done', doneData(record, result.reader.stopReason, result.reader.usage));
        if (result.failure)
          return sseEvent(
            'error',
            JSON.stringify(errorEnvelope(result.failure.type, result.failure.message, request.id)),
          );
        return '';
      },
    };
    return streamMessage(exchange, body, framing);
  },

  framing(request, _call, answerId) {
    return {
      start: (model) => ({
        event: 'start',
        data: JSON.stringify({ id: request.id, model, answer_id: answerId }),
      }),
      readers: (emit) => ({
        onTextLiteral: (literal) => {
          emit('delta', `{"text":${literal}}`, JSON.parse(literal) as string);
        },
      }),
      done: (stopReason, usage) => ({ event: 'done', data: doneData(request.record, stopReason, usage) }),
      error: (failure) => ({
        event: 'error',
        data: JSON.stringify(errorEnvelope(failure.type, failure.message, request.id)),
      }),
    };
  },
};

/** `POST /llm/query`, in the service's own error envelope. */
export function queryRoutes(deps: PipelineDeps) {
  return (app: FastifyInstance, _options: unknown, done: () => void): void => {
    answerRoute(app, deps, {
      method: 'POST',
      url: '/llm/query',
      schema,
      errorShape: 'default',
      adapter: queryAdapter,
    });
    done();
  };
}
