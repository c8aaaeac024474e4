import type { FastifyReply, FastifyRequest } from 'fastify';
import { anthropicModelsToOpenAI } from '../openai/from-anthropic.ts';
import type { UpstreamClient } from '../upstream/anthropic-client.ts';
import { mapUpstreamStatus } from '../upstream/map-status.ts';
import { abortOnClientClose } from './client-abort.ts';

/**
 * `GET /v1/models[/{id}]` asked by an OpenAI client (no `anthropic-version` header): the upstream's
 * list (or model) in OpenAI's shape, so both SDKs' model listing works on the same path.
 */
export function wantsOpenAIShape(request: FastifyRequest): boolean {
  return request.headers['anthropic-version'] === undefined;
}

export async function sendOpenAIModels(request: FastifyRequest, reply: FastifyReply, upstream: UpstreamClient, id?: string): Promise<void> {
  const path = id === undefined ? '/v1/models?limit=1000' : `/v1/models/${encodeURIComponent(id)}`;
  const answer = await upstream.open({ method: 'GET', path, signal: abortOnClientClose(reply.raw) }, request.record);
  if (!answer.ok) throw mapUpstreamStatus(answer.statusCode, answer.headers, answer.errorBody);
  const body: unknown = await answer.body.json();
  const list = anthropicModelsToOpenAI(id === undefined ? body : { data: [body] });
  const single = list.data[0];
  await reply.send(id === undefined ? list : single);
}
