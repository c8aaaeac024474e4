import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConnectorError } from '../errors.ts';
import type { ClientKey } from '../limits/client-keys.ts';
import { rejectionError, type Guard } from '../limits/guard.ts';
import type { Metrics } from '../observability/metrics.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Client keys and limits apply to this route. */
    guarded?: boolean;
    /** Client keys (only) apply to this route, e.g. /metrics with METRICS_REQUIRE_KEY. */
    authenticated?: boolean;
  }
  interface FastifyRequest {
    client: ClientKey | null;
  }
}

/**
 * Authentication runs on every guarded (or authenticated) route before the body is even read: a missing or wrong key
 * is a 401 in the route's own error shape, and the key's name (never the key) goes to the log.
 */
export function installAuthentication(app: FastifyInstance, guard: Guard | undefined): void {
  app.decorateRequest('client', null);
  if (!guard) return;
  app.addHook('onRequest', (request, _reply, done) => {
    const { guarded, authenticated } = request.routeOptions.config;
    if (guarded !== true && authenticated !== true) {
      done();
      return;
    }
    const client = guard.authenticate(request.headers);
    if (client === 'missing' || client === 'invalid') {
      const message =
        client === 'missing'
          ? 'A client key is required: send Authorization: Bearer <key> or x-api-key: <key>'
          : 'The client key is not valid';
      done(new ConnectorError('authentication_error', 401, message));
      return;
    }
    request.client = client;
    request.record.keyName = client?.name;
    done();
  });
}

/**
 * Checks the client's limits before the upstream is called, reserving `reserveTokens` (the answer's
 * max_tokens). The lease is settled from the answer's real usage when the response closes. Throws the
 * 429/503 with `Retry-After` and `RateLimit-*` when over a limit.
 */
export async function admit(
  guard: Guard | undefined,
  request: FastifyRequest,
  reply: FastifyReply,
  reserveTokens: number,
  signal: AbortSignal,
  metrics?: Metrics,
): Promise<void> {
  if (!guard) return;
  const admission = await guard.admit(request.client, reserveTokens, signal);
  void reply.headers(admission.headers);
  if (!admission.ok) {
    metrics?.rateLimitRejections.inc({ key: request.client?.name ?? 'anonymous', reason: admission.reason });
    throw rejectionError(admission);
  }
  request.record.keyName = admission.client;
  request.record.lease = admission.lease;
}
