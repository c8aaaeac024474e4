import type { FastifyInstance, FastifyRequest } from 'fastify';
import { emptyUsage, mergeUsage } from '../anthropic/message-stream.ts';
import { replaceModel } from '../anthropic/replace-model.ts';
import { ConnectorError } from '../errors.ts';
import { anthropicModelsToOpenAI } from '../openai/from-anthropic.ts';
import { fallbackChain } from '../upstream/fallbacks.ts';
import { mapUpstreamStatus } from '../upstream/map-status.ts';
import { parseJsonBody } from './json-body.ts';
import {
  answerRoute,
  retryHeaders,
  type AnswerResult,
  type ApiAdapter,
  type Exchange,
  type OpenedAnswer,
  type PipelineDeps,
  type UpstreamCall,
} from './pipeline.ts';
import { relayRawBody, relayRawStream } from './raw-relay.ts';
import { forwardedRequestHeaders, pickUpstreamHeaders } from './passthrough-headers.ts';
import { pendingHeaders } from './sse-writer.ts';

interface RawCall extends UpstreamCall {
  /** The answer streams (SSE) and is relayed event by event. */
  readonly stream: boolean;
  /** The answer is a Messages answer whose usage is read. */
  readonly messages: boolean;
}

/** Validates the minimum (a JSON object) and reads what the log needs; the bytes go upstream unchanged. */
function inspectBody(raw: unknown): {
  body: Buffer;
  stream: boolean;
  model: string | undefined;
  maxTokens: number;
} {
  if (!Buffer.isBuffer(raw))
    throw new ConnectorError('invalid_request_error', 400, 'A JSON object body is required');
  const parsed = parseJsonBody(raw);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConnectorError('invalid_request_error', 400, 'The request body must be a JSON object');
  }
  const {
    stream,
    model,
    max_tokens: maxTokens,
  } = parsed as { stream?: unknown; model?: unknown; max_tokens?: unknown };
  return {
    body: raw,
    stream: stream === true,
    model: typeof model === 'string' ? model : undefined,
    maxTokens: typeof maxTokens === 'number' && maxTokens > 0 ? maxTokens : 0,
  };
}

/** The usage and stop reason of a whole Messages answer, when it is one. */
function usageOf(bytes: Buffer | null): Pick<AnswerResult, 'usage' | 'stopReason'> {
  if (bytes === null) return { usage: undefined, stopReason: undefined };
  try {
    const message = JSON.parse(bytes.toString('utf8')) as {
      usage?: Parameters<typeof mergeUsage>[1];
      stop_reason?: string;
    };
    const usage = emptyUsage();
    mergeUsage(usage, message.usage);
    return { usage, stopReason: message.stop_reason ?? null };
  } catch {
    // Not JSON: nothing to count; the client got the bytes as they were.
    return { usage: undefined, stopReason: undefined };
  }
}

/** Writes the upstream's status and headers, then relays its body unchanged (a copy tapped for usage). */
async function relay(exchange: Exchange, call: RawCall, answer: OpenedAnswer): Promise<AnswerResult> {
  const { reply, request, record } = exchange;
  reply.hijack();
  const res = reply.raw;
  const head = {
    ...pendingHeaders(reply),
    ...pickUpstreamHeaders(answer.headers),
    'x-request-id': request.id,
  };
  if (call.stream) {
    exchange.streamStarted();
    // As the service's other streams: no proxy in between may buffer or transform the events.
    res.writeHead(answer.statusCode, {
      ...head,
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    const result = await relayRawStream(answer.body, res, request.id, exchange.config);
    return {
      outcome: result.outcome,
      failure: result.failure,
      usage: result.reader.usage,
      stopReason: result.reader.stopReason,
    };
  }
  record.markFirstByte();
  res.writeHead(answer.statusCode, head);
  const { outcome, bytes } = await relayRawBody(answer.body, res);
  const read = call.messages ? usageOf(bytes) : { usage: undefined, stopReason: undefined };
  return { outcome: outcome === 'client_closed' ? 'client_closed' : 'completed', failure: null, ...read };
}

/**
 * The Anthropic API, relayed: the upstream's answer goes back as it is, error answers included, but
 * for one: a 401 or 403 refuses the service's own credentials (the client's key, if any, was checked
 * here), so the client gets a 502 saying so, never a hint that its own key is wrong.
 */
const passthrough: Pick<ApiAdapter<RawCall>, 'refused' | 'answer'> = {
  async refused(exchange, _call, answer) {
    if (answer.statusCode === 401 || answer.statusCode === 403)
      throw mapUpstreamStatus(answer.statusCode, answer.headers, answer.errorBody);
    const { reply, record } = exchange;
    record.errorType = `upstream_${answer.statusCode}`;
    await reply
      .code(answer.statusCode)
      .headers({ ...pickUpstreamHeaders(answer.headers), ...retryHeaders(record) })
      .send(answer.errorBody);
  },
  answer: relay,
};

function messagesAdapter(path: '/v1/messages' | '/v1/messages/count_tokens'): ApiAdapter<RawCall> {
  const messages = path === '/v1/messages';
  return {
    read(request, config) {
      const { body, stream, model, maxTokens } = inspectBody(request.body);
      return {
        upstream: { method: 'POST', path, body, headers: forwardedRequestHeaders(request.headers) },
        model,
        stream: stream && messages,
        messages,
        reserveTokens: messages ? maxTokens : 0,
        // Fallbacks rewrite only the value of the top-level "model"; every other byte goes upstream as sent.
        ...(messages
          ? {
              fallbacks: {
                models: fallbackChain(model, config.fallbackModels),
                bodyFor: (next: string) => replaceModel(body, next),
              },
            }
          : {}),
      };
    },
    ...passthrough,
  };
}

/** Model ids: letters, digits and `._-:@` (Anthropic, Bedrock and Vertex ids alike); nothing that could be a path. */
const MODEL_ID = /^[\w.:@-]{1,200}$/;
const LIST_PARAMS = { before_id: MODEL_ID, after_id: MODEL_ID, limit: /^\d{1,4}$/ } as const;

/** The model list's query, rebuilt from the parameters the API knows: nothing else reaches the upstream. */
function modelsQuery(request: FastifyRequest): string {
  const given = request.query as Record<string, unknown>;
  const params = new URLSearchParams();
  for (const [name, pattern] of Object.entries(LIST_PARAMS)) {
    const value = given[name];
    if (value === undefined) continue;
    if (typeof value !== 'string' || !pattern.test(value)) {
      throw new ConnectorError('invalid_request_error', 400, `The query parameter "${name}" is not valid`);
    }
    params.set(name, value);
  }
  const query = params.toString();
  return query === '' ? '' : `?${query}`;
}

/** `anthropic-version` asks for Anthropic's shape; without it (an OpenAI client) the same list in OpenAI's shape. */
function wantsOpenAIShape(request: FastifyRequest): boolean {
  return request.headers['anthropic-version'] === undefined;
}

interface ModelsCall extends RawCall {
  readonly openai: boolean;
  readonly id: string | undefined;
}

function modelsAdapter(single: boolean): ApiAdapter<ModelsCall> {
  return {
    read(request) {
      const openai = wantsOpenAIShape(request);
      let id: string | undefined;
      if (single) {
        id = (request.params as { id: string }).id;
        if (!MODEL_ID.test(id))
          throw new ConnectorError(
            'not_found_error',
            404,
            'No such model: a model id has only letters, digits and . _ - : @',
          );
      }
      const path =
        id !== undefined
          ? `/v1/models/${id}`
          : openai
            ? '/v1/models?limit=1000'
            : `/v1/models${modelsQuery(request)}`;
      const headers = openai ? {} : { headers: forwardedRequestHeaders(request.headers) };
      return {
        upstream: { method: 'GET', path, ...headers },
        model: undefined,
        reserveTokens: 0,
        stream: false,
        messages: false,
        openai,
        id,
      };
    },
    refused(exchange, call, answer) {
      if (call.openai) throw mapUpstreamStatus(answer.statusCode, answer.headers, answer.errorBody);
      return passthrough.refused?.(exchange, call, answer) ?? Promise.resolve();
    },
    async answer(exchange, call, answer) {
      if (!call.openai) return relay(exchange, call, answer);
      const body: unknown = await answer.body.json();
      const list = anthropicModelsToOpenAI(call.id === undefined ? body : { data: [body] });
      exchange.record.markFirstByte();
      await exchange.reply.send(call.id === undefined ? list : list.data[0]);
      return { outcome: 'completed', failure: null, usage: undefined, stopReason: undefined };
    },
  };
}

/**
 * Anthropic-native routes: `/v1/messages`, `/v1/messages/count_tokens`, `/v1/models[/{id}]`, in
 * Anthropic's error shape. Their bodies stay raw bytes (this plugin's own JSON parser).
 */
export function anthropicRoutes(deps: PipelineDeps) {
  return (scope: FastifyInstance, _options: unknown, done: () => void): void => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, next) => {
      next(null, body);
    });
    const tags = ['Anthropic-compatible'];
    const route = <C extends UpstreamCall>(
      method: 'GET' | 'POST',
      url: string,
      summary: string,
      adapter: ApiAdapter<C>,
    ): void => {
      answerRoute(scope, deps, {
        method,
        url,
        schema: { summary, tags, hide: false },
        errorShape: 'anthropic',
        adapter,
      });
    };
    route(
      'POST',
      '/v1/messages',
      'Anthropic Messages API, relayed byte for byte (streaming and not)',
      messagesAdapter('/v1/messages'),
    );
    route(
      'POST',
      '/v1/messages/count_tokens',
      'Anthropic token counting, relayed',
      messagesAdapter('/v1/messages/count_tokens'),
    );
    route(
      'GET',
      '/v1/models',
      'List models: Anthropic shape with anthropic-version, else OpenAI shape',
      modelsAdapter(false),
    );
    route(
      'GET',
      '/v1/models/:id',
      'One model: Anthropic shape with anthropic-version, else OpenAI shape',
      modelsAdapter(true),
    );
    done();
  };
}
