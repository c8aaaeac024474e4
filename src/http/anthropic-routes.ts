import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { mergeUsage } from '../anthropic/message-stream.ts';
import { replaceModel } from '../anthropic/replace-model.ts';
import { ConnectorError } from '../errors.ts';
import type { UpstreamAnswer } from '../upstream/anthropic-client.ts';
import { fallbackChain, NO_FALLBACKS, openWithFallbacks, type Fallbacks } from '../upstream/fallbacks.ts';
import { parseJsonBody } from './json-body.ts';
import { abortOnClientClose } from './client-abort.ts';
import { sendOpenAIModels, wantsOpenAIShape } from './openai-models.ts';
import { admit } from './guard-hooks.ts';
import { relayRawBody, relayRawStream } from './raw-relay.ts';
import type { RouteDeps } from './route-deps.ts';
import { setServedModel } from './served-model.ts';
import { pendingHeaders } from './sse-writer.ts';
import { pickUpstreamHeaders, forwardedRequestHeaders, retriedHeader } from './passthrough-headers.ts';

interface RawCall {
  method: 'GET' | 'POST';
  path: string;
  body?: Buffer;
  stream: boolean;
  /** Tokens to reserve against the client's limits (the request's max_tokens). */
  reserveTokens: number;
  /** Messages only: other models to ask, and the answer names its model in `x-served-model`. */
  fallbacks?: Fallbacks;
}

/** Validates the minimum (a JSON object) and reads what the log needs; the bytes go upstream unchanged. */
function inspectBody(raw: unknown): { body: Buffer; stream: boolean; model: string | undefined; maxTokens: number } {
  if (!Buffer.isBuffer(raw)) throw new ConnectorError('invalid_request_error', 400, 'A JSON object body is required');
  const parsed = parseJsonBody(raw);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConnectorError('invalid_request_error', 400, 'The request body must be a JSON object');
  }
  const { stream, model, max_tokens: maxTokens } = parsed as { stream?: unknown; model?: unknown; max_tokens?: unknown };
  return {
    body: raw,
    stream: stream === true,
    model: typeof model === 'string' ? model : undefined,
    maxTokens: typeof maxTokens === 'number' && maxTokens > 0 ? maxTokens : 0,
  };
}

function sendUpstreamError(reply: FastifyReply, answer: Extract<UpstreamAnswer, { ok: false }>): FastifyReply {
  reply.request.record.errorType = `upstream_${answer.statusCode}`;
  return reply
    .code(answer.statusCode)
    .headers({ ...pickUpstreamHeaders(answer.headers), ...retriedHeader(reply.request.record.attempts) })
    .send(answer.errorBody);
}

/** Calls the upstream and relays its answer unchanged: status, selected headers and body bytes. */
async function passthrough(request: FastifyRequest, reply: FastifyReply, call: RawCall, deps: RouteDeps): Promise<void> {
  const { record } = request;
  const signal = abortOnClientClose(reply.raw);
  await admit(deps.guard, request, reply, call.reserveTokens, signal, deps.metrics);
  const answer = await openWithFallbacks(
    deps.upstream,
    { method: call.method, path: call.path, headers: forwardedRequestHeaders(request.headers), signal, ...(call.body ? { body: call.body } : {}) },
    record,
    call.fallbacks ?? NO_FALLBACKS,
  );
  if (!answer.ok) {
    await sendUpstreamError(reply, answer);
    return;
  }
  if (call.fallbacks) setServedModel(reply, record.model);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(answer.statusCode, { ...pendingHeaders(reply), ...pickUpstreamHeaders(answer.headers), 'x-request-id': request.id });
  if (call.stream) record.markStreaming();
  else record.markFirstByte();
  if (call.stream) {
    const result = await relayRawStream(answer.body, res, request.id, deps.config);
    record.finish(result);
    return;
  }
  const { outcome, bytes } = await relayRawBody(answer.body, res);
  if (outcome === 'client_closed') record.outcome = 'client_closed';
  if (bytes && call.path === '/v1/messages') readUsage(request, bytes);
}

function readUsage(request: FastifyRequest, bytes: Buffer): void {
  try {
    const message = JSON.parse(bytes.toString('utf8')) as { model?: string; usage?: Parameters<typeof mergeUsage>[1]; stop_reason?: string };
    const usage = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    mergeUsage(usage, message.usage);
    request.record.usage = usage;
    request.record.stopReason = message.stop_reason ?? null;
  } catch {
    // Not JSON: nothing to count; the client got the bytes as they were.
  }
}

/**
 * Anthropic-native routes: `/v1/messages`, `/v1/messages/count_tokens`, `/v1/models[/{id}]`.
 * Registered in their own scope so that their bodies stay raw bytes.
 */
export async function registerAnthropicRoutes(app: FastifyInstance, deps: RouteDeps): Promise<void> {
  await app.register((scope, _opts, done) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, next) => {
      next(null, body);
    });
    const config = { errorShape: 'anthropic' as const, guarded: true };
    const tags = ['Anthropic-compatible'];

    const postRoute = (path: string, summary: string): void => {
      scope.post(path, { config, schema: { summary, tags, hide: false } }, async (request, reply) => {
        const { body, stream, model, maxTokens } = inspectBody(request.body);
        request.record.model = model;
        const messages = path === '/v1/messages';
        const call: RawCall = { method: 'POST', path, body, stream: stream && messages, reserveTokens: messages ? maxTokens : 0 };
        // Fallbacks rewrite only the value of the top-level "model"; every other byte goes upstream as sent.
        if (messages) call.fallbacks = { models: fallbackChain(model, deps.config.fallbackModels), bodyFor: (next) => replaceModel(body, next) };
        await passthrough(request, reply, call, deps);
      });
    };
    postRoute('/v1/messages', 'Anthropic Messages API, relayed byte for byte (streaming and not)');
    postRoute('/v1/messages/count_tokens', 'Anthropic token counting, relayed');

    scope.get('/v1/models', { config, schema: { summary: 'List models: Anthropic shape with anthropic-version, else OpenAI shape', tags } }, async (request, reply) => {
      if (wantsOpenAIShape(request)) return sendOpenAIModels(request, reply, deps.upstream);
      const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
      await passthrough(request, reply, { method: 'GET', path: `/v1/models${query}`, stream: false, reserveTokens: 0 }, deps);
    });
    scope.get<{ Params: { id: string } }>('/v1/models/:id', { config, schema: { summary: 'One model: Anthropic shape with anthropic-version, else OpenAI shape', tags } }, async (request, reply) => {
      if (wantsOpenAIShape(request)) return sendOpenAIModels(request, reply, deps.upstream, request.params.id);
      await passthrough(request, reply, { method: 'GET', path: `/v1/models/${encodeURIComponent(request.params.id)}`, stream: false, reserveTokens: 0 }, deps);
    });
    done();
  });
}
