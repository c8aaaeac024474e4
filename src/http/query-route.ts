import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { buildMessagesBody } from '../anthropic/build-request.ts';
import type { Usage } from '../anthropic/message-stream.ts';
import type { Config } from '../config.ts';
import { ConnectorError, errorEnvelope } from '../errors.ts';
import type { UpstreamBody } from '../upstream/upstream-body.ts';
import { fallbackChain, openWithFallbacks } from '../upstream/fallbacks.ts';
import { mapUpstreamStatus } from '../upstream/map-status.ts';
import { abortOnClientClose } from './client-abort.ts';
import { admit } from './guard-hooks.ts';
import { brokenAnswer, pumpMessageStream, type PumpResult } from './message-pump.ts';
import { setServedModel } from './served-model.ts';
import { errorResponses, type RouteDeps } from './route-deps.ts';
import { ErrorBody, QueryAnswer, QueryBody, SSE_DESCRIPTION } from './query-schema.ts';
import { pendingHeaders, SSE_HEADERS, SseBatch, sseEvent } from './sse-writer.ts';

const schema = {
  summary: 'Ask Claude; the answer streams back as Server-Sent Events',
  description: `Send \`prompt\` (or \`messages\`). By default the answer streams as SSE. ${SSE_DESCRIPTION}\n\nWith \`"stream": false\` the answer is one JSON object.`,
  body: QueryBody,
  response: {
    200: {
      description: 'The answer: SSE by default, JSON with "stream": false',
      headers: {
        'x-request-id': { type: 'string', description: 'The request id (also in the start event and the log line)' },
        'x-served-model': { type: 'string', description: 'The model that served the answer: the requested one, or a FALLBACK_MODELS model' },
      },
      content: {
        'text/event-stream': { schema: { type: 'string', description: SSE_DESCRIPTION } },
        'application/json': { schema: QueryAnswer },
      },
    },
    ...errorResponses(ErrorBody, 'Invalid request, or the upstream rejected it'),
  },
};

function usageJson(usage: Usage): string {
  return `{"input_tokens":${usage.input_tokens},"output_tokens":${usage.output_tokens},"cache_creation_input_tokens":${usage.cache_creation_input_tokens},"cache_read_input_tokens":${usage.cache_read_input_tokens}}`;
}

/** Streams the answer as SSE; the status was decided (200) when the upstream answer began. */
async function relay(request: FastifyRequest, reply: FastifyReply, body: UpstreamBody, model: string, config: Config): Promise<PumpResult> {
  reply.hijack();
  const res = reply.raw;
  // After hijack, headers set on the reply (rate limits, CORS) are only sent if written here.
  res.writeHead(200, { ...pendingHeaders(reply), ...SSE_HEADERS });
  request.record.markStreaming();
  // The head and `start` go out with the first upstream chunk (message_start, sent with the upstream's headers).
  const batch = new SseBatch(res, config.keepAliveIntervalMs, sseEvent('start', JSON.stringify({ id: request.id, model })));
  const result = await pumpMessageStream(
    body,
    {
      onTextLiteral: (literal) => {
        batch.add(`event: delta\ndata: {"text":${literal}}\n\n`);
      },
      ...batch.hooks,
    },
    config,
  );
  if (result.outcome === 'completed') {
    const stop = JSON.stringify(result.reader.stopReason);
    batch.end(sseEvent('done', `{"stop_reason":${stop},"usage":${usageJson(result.reader.usage)}}`));
  } else if (result.failure) {
    batch.end(sseEvent('error', JSON.stringify(errorEnvelope(result.failure.type, result.failure.message, request.id))));
  } else {
    batch.end();
  }
  return result;
}

/** Collects the whole answer, then sends one JSON object (or an honest error status). */
async function collect(reply: FastifyReply, body: UpstreamBody, model: string, config: Config): Promise<PumpResult> {
  const parts: string[] = [];
  const result = await pumpMessageStream(
    body,
    { onTextLiteral: (literal) => parts.push(JSON.parse(literal) as string), clientGone: () => reply.raw.destroyed },
    config,
  );
  if (result.outcome === 'completed') {
    const { reader } = result;
    reply.request.record.markFirstByte();
    await reply
      .code(200)
      .send({ id: reply.request.id, model: reader.model ?? model, text: parts.join(''), stop_reason: reader.stopReason, usage: reader.usage });
  } else if (result.failure) {
    throw brokenAnswer(result.failure);
  }
  return result;
}

export function registerQueryRoute(app: FastifyInstance, { config, upstream, guard, metrics }: RouteDeps): void {
  app.post('/llm/query', { schema, config: { guarded: true } }, async (request, reply) => {
    const input = request.body as QueryBody;
    if ((input.prompt === undefined) === (input.messages === undefined)) {
      throw new ConnectorError('invalid_request_error', 400, 'Give exactly one of "prompt" or "messages"');
    }
    const model = input.model ?? config.defaultModel;
    const { record } = request;
    record.model = model;
    const signal = abortOnClientClose(reply.raw);
    await admit(guard, request, reply, input.max_tokens ?? config.defaultMaxTokens, signal, metrics);
    const defaults = { model: config.defaultModel, maxTokens: config.defaultMaxTokens };
    const answer = await openWithFallbacks(upstream, { method: 'POST', path: '/v1/messages', body: buildMessagesBody(input, defaults), signal }, record, {
      models: fallbackChain(model, config.fallbackModels),
      bodyFor: (next) => buildMessagesBody({ ...input, model: next }, defaults),
    });
    if (!answer.ok) throw mapUpstreamStatus(answer.statusCode, answer.headers, answer.errorBody);
    const served = record.model; // the requested model, or the fallback that answered
    setServedModel(reply, served);
    const result = input.stream === false ? await collect(reply, answer.body, served, config) : await relay(request, reply, answer.body, served, config);
    record.finish(result);
  });
}
