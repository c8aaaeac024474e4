import type { FastifyInstance } from 'fastify';
import { replaceModel } from '../anthropic/replace-model.ts';
import { ConnectorError } from '../errors.ts';
import { fallbackChain } from '../upstream/fallbacks.ts';
import { parseJsonBody } from './json-body.ts';
import { modelsAdapter } from './models-route.ts';
import { forwardedRequestHeaders } from './passthrough-headers.ts';
import { passthrough, type RawCall } from './passthrough.ts';
import { answerRoute, type ApiAdapter, type PipelineDeps, type UpstreamCall } from './pipeline.ts';

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
