import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from './config.ts';
import { registerAnthropicRoutes } from './http/anthropic-routes.ts';
import { installErrorHandling } from './http/error-handler.ts';
import { parseJsonBody } from './http/json-body.ts';
import { registerPlayground } from './http/playground-route.ts';
import { registerQueryRoute } from './http/query-route.ts';
import { RequestRecord } from './http/request-record.ts';
import type { UpstreamClient } from './upstream/anthropic-client.ts';

declare module 'fastify' {
  interface FastifyRequest {
    record: RequestRecord;
  }
}

export interface AppDeps {
  upstream: UpstreamClient;
  logger: FastifyBaseLogger;
}

const SANE_REQUEST_ID = /^[\w.:-]{1,128}$/;
/** Which methods each static path allows, for honest 405s. */
const ALLOWED_METHODS = new Map([
  ['/llm/query', 'POST'],
  ['/healthz', 'GET, HEAD'],
  ['/openapi.json', 'GET, HEAD'],
  ['/', 'GET, HEAD'],
  ['/v1/messages', 'POST'],
  ['/v1/messages/count_tokens', 'POST'],
  ['/v1/models', 'GET, HEAD'],
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
  });

  app.decorateRequest('record', null as unknown as RequestRecord);
  app.addHook('onRequest', (request, reply, done) => {
    const record = new RequestRecord();
    request.record = record;
    void reply.header('x-request-id', request.id);
    const res = reply.raw;
    res.once('close', () => {
      const route = request.routeOptions.url ?? request.url.split('?', 1)[0] ?? '';
      record.log(request.log, route, res.statusCode, res.writableFinished);
    });
    done();
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
  registerQueryRoute(app, { config, upstream: deps.upstream });
  await registerPlayground(app);
  await registerAnthropicRoutes(app, { config, upstream: deps.upstream });
  return app;
}
