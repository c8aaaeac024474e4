import type { FastifyReply } from 'fastify';

const HEADER_SAFE = /^[\x21-\x7e]{1,200}$/;

/**
 * `x-served-model`: the model that answers (the requested one, or a fallback). Set on the reply
 * before the first byte; a route that hijacks the reply passes it on with `pendingHeaders()`.
 * A client-given name that cannot be a header value is left out rather than break the answer.
 */
export function setServedModel(reply: FastifyReply, model: string | undefined): void {
  if (model !== undefined && HEADER_SAFE.test(model)) void reply.header('x-served-model', model);
}
