import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from './config.ts';
import { registerAnthropicRoutes } from './http/anthropic-routes.ts';
import { registerChatCompletionsRoute } from './http/chat-completions-route.ts';
import { clientErrorOptions, installClientErrors } from './http/client-errors.ts';
import { connectionOptions, installConnectionLimits } from './http/connections.ts';
import { installErrorHandling } from './http/error-handler.ts';
import { installAuthentication } from './http/guard-hooks.ts';
import { parseJsonBody } from './http/json-body.ts';
import { registerPlayground } from './http/playground-route.ts';
import { registerQueryRoute } from './http/query-route.ts';
import { RequestRecord } from './http/request-record.ts';
import type { Guard } from './limits/guard.ts';
import type { Metrics } from './observability/metrics.ts';
import type { UpstreamClient } from './upstream/anthropic-client.ts';

declare module 'fastify' {
  interface FastifyRequest {
    record: RequestRecord;
  }
}

export interface AppDeps {
  upstream: UpstreamClient;
  logger: FastifyBaseLogger;
  /** Prometheus metrics; without them `/metrics` does not exist. */
  metrics?: Metrics;
  /** The text `/metrics` serves; default: this process's registry (a cluster worker asks the primary for all workers'). */
  scrapeMetrics?: (() => Promise<string>) | undefined;
  /** True once shutdown has begun: `/readyz` answers 503. */
  isDraining?: () => boolean;
  /** Dependencies reachable (e.g. Redis when configured). */
  isReady?: () => boolean | Promise<boolean>;
  /** Client keys and limits; undefined when none are configured. */
  guard?: Guard | undefined;
}

const SANE_REQUEST_ID = /^[\w.:-]{1,128}$/;
/** Which methods each static path allows, for honest 405s. */
const ALLOWED_METHODS = new Map([
  ['/llm/query', 'POST'],
  ['/healthz', 'GET, HEAD'],
  ['/openapi.json', 'GET, HEAD'],
  ['/readyz', 'GET, HEAD'],
  ['/metrics', 'GET, HEAD'],
  ['/', 'GET, HEAD'],
  ['/v1/messages', 'POST'],
  ['/v1/messages/count_tokens', 'POST'],
  ['/v1/models', 'GET, HEAD'],
  ['/v1/chat/completions', 'POST'],
]);

/** Builds the service; never listens. */
export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    // One line per request is written by RequestRecord instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.maxBodyBytes,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    ...connectionOptions(config),
    ...clientErrorOptions(),
  });
  installConnectionLimits(app, config.maxConnections, deps.metrics);

  app.decorateRequest('record', null as unknown as RequestRecord);
  if (config.corsOrigins.length > 0) {
    const allowed = new Set(config.corsOrigins);
    await app.register(cors, {
      // A predicate, not a list: another origin then gets no CORS headers at all (a list still sends it the preflight's allow headers).
      origin: (origin, callback) => {
        callback(null, origin !== undefined && allowed.has(origin));
      },
      methods: ['GET', 'HEAD', 'POST'],
      allowedHeaders: ['content-type', 'authorization', 'x-api-key', 'anthropic-version', 'anthropic-beta', 'x-request-id'],
      exposedHeaders: ['x-request-id', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'x-ignored-fields', 'x-served-model'],
      maxAge: 600,
    });
  }
  app.addHook('onRequest', (request, reply, done) => {
    const record = new RequestRecord(request.routeOptions.url ?? 'unmatched', deps.metrics);
    request.record = record;
    void reply.header('x-request-id', request.id);
    const res = reply.raw;
    res.once('close', () => {
      record.close(request.log, res.statusCode, res.writableFinished);
    });
    done();
  });
  installClientErrors(app);

  installAuthentication(app, deps.guard);
  // The answering routes report the real usage when their handler returns, which can be after the
  // response has closed: the request's log line and its limits' settlement wait for it.
  app.addHook('onRoute', (route) => {
    if (route.config?.guarded !== true) return;
    const handler = route.handler;
    route.handler = async function (this: FastifyInstance, request, reply) {
      request.record.handlerStarted();
      try {
        return await handler.call(this, request, reply);
      } finally {
        request.record.handlerDone();
      }
    };
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  installErrorHandling(app, ALLOWED_METHODS);

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'LLM Connector',
        version: '0.1.0',
        description: 'Streams answers from Anthropic Claude as Server-Sent Events, with honest errors.',
      },
      servers: [{ url: '/' }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  app.get('/healthz', { schema: { summary: 'Liveness: 200 without calling the upstream' } }, () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { summary: 'Readiness: 200 when ready to serve, 503 while draining or when a dependency is down' } }, async (_request, reply) => {
    const ready = !(deps.isDraining?.() ?? false) && (deps.guard?.healthy() ?? true) && (await (deps.isReady?.() ?? true));
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready' });
  });
  const { metrics } = deps;
  if (metrics) {
    const scrape = deps.scrapeMetrics ?? (() => metrics.registry.metrics());
    app.get('/metrics', { schema: { summary: 'Prometheus metrics', hide: true }, config: { authenticated: config.metricsRequireKey } }, async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await scrape()),
    );
  }
  const routeDeps = { config, upstream: deps.upstream, guard: deps.guard, metrics: deps.metrics };
  registerQueryRoute(app, routeDeps);
  await registerPlayground(app);
  await registerAnthropicRoutes(app, routeDeps);
  registerChatCompletionsRoute(app, routeDeps);
  return app;
}
