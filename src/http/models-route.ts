import type { FastifyRequest } from 'fastify';
import { ConnectorError } from '../errors.ts';
import { anthropicModelsToOpenAI } from '../openai/from-anthropic.ts';
import { mapUpstreamStatus } from '../upstream/map-status.ts';
import { forwardedRequestHeaders } from './passthrough-headers.ts';
import type { ApiAdapter } from './pipeline.ts';
import { passthrough, relay, type RawCall } from './passthrough.ts';

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

export function modelsAdapter(single: boolean): ApiAdapter<ModelsCall> {
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
