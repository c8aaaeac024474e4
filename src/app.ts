import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { answerRoutes } from './answers/answer-routes.ts';
import type { AnswerStore } from './answers/answer-store.ts';
import { AnswerService } from './answers/detached-answers.ts';
import { MemoryAnswerStore } from './answers/memory-answer-store.ts';
import type { Config } from './config.ts';
import { anthropicRoutes } from './http/anthropic-routes.ts';
import { installAuthentication } from './http/authentication.ts';
import { chatCompletionsRoutes } from './http/chat-completions-route.ts';
import { clientErrorOptions, installClientErrors } from './http/client-errors.ts';
import { connectionOptions, installConnectionLimits } from './http/connections.ts';
import { installErrorHandling } from './http/error-handler.ts';
import { parseJsonBody } from './http/json-body.ts';
import { installRequestPipeline, type PipelineDeps } from './http/pipeline.ts';
import { playgroundRoutes } from './http/playground-route.ts';
import { queryRoutes } from './http/query-route.ts';
import { RequestEvents, type RequestSubscriber } from './http/request-events.ts';
import { RequestRecord } from './http/request-record.ts';
import { RouteTable } from './http/route-table.ts';
import { systemRoutes } from './http/system-routes.ts';
import type { Guard } from './limits/guard.ts';
import type { Metrics } from './observability/metrics.ts';
import { requestLog } from './observability/request-log.ts';
import { requestMetrics } from './observability/request-metrics.ts';
import type { PriceTable } from './pricing/cost.ts';
import { reportRoutes } from './reports/report-routes.ts';
import { createUsageStore, usageRecorder, type UsageStore } from './reports/usage-store.ts';
import type { UpstreamClient } from './upstream/anthropic-client.ts';

declare module 'fastify' {
  interface FastifyRequest {
    record: RequestRecord;
  }
  interface FastifyInstance {
    /** What is registered: paths, methods, error shapes, which are guarded. */
    routeTable: RouteTable;
    /** Resumable and background answers; null when they are off (RESUMABLE_ANSWERS). */
    answers: AnswerService | null;
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
  /** More subscribers to every finished request, after the log line, the metrics and the limits. */
  subscribers?: readonly RequestSubscriber[];
  /** Where the usage and cost reports are kept; default: from the settings (Redis with REDIS_URL), closed with the app. */
  usage?: UsageStore;
  /** Where resumable and background answers live; default: in this process's memory. */
  answerStore?: AnswerStore;
  /** On close, running answers may go on this long before they are stopped (default 0: at once). */
  answerDrainMs?: number;
}

/** The package's version (package.json is one folder above both `src/` and `dist/`). */
const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

const SANE_REQUEST_ID = /^[\w.:-]{1,128}$/;

function corsOptions(origins: readonly string[]) {
  const allowed = new Set(origins);
  return {
    // A predicate, not a list: another origin then gets no CORS headers at all (a list still sends it the preflight's allow headers).
    origin: (origin: string | undefined, callback: (error: Error | null, allow: boolean) => void) => {
      callback(null, origin !== undefined && allowed.has(origin));
    },
    methods: ['GET', 'HEAD', 'POST'],
    allowedHeaders: [
      'content-type',
      'authorization',
      'x-api-key',
      'anthropic-version',
      'anthropic-beta',
      'x-request-id',
      'last-event-id',
    ],
    exposedHeaders: [
      'x-request-id',
      'retry-after',
      'ratelimit-limit',
      'ratelimit-remaining',
      'ratelimit-reset',
      'x-ignored-fields',
      'x-served-model',
      'x-answer-id',
      'location',
    ],
    maxAge: 600,
  };
}

/** Each request gets its record (finished once, to `events`) and its `x-request-id` as it arrives. */
function installRequestRecords(app: FastifyInstance, events: RequestEvents, prices: PriceTable): void {
  app.decorateRequest('record', null as unknown as RequestRecord);
  app.addHook('onRequest', (request, reply, done) => {
    const record = new RequestRecord(
      request.routeOptions.url ?? 'unmatched',
      request.id,
      (finished) => {
        events.finished(finished, request);
      },
      prices,
    );
    request.record = record;
    void reply.header('x-request-id', request.id);
    const res = reply.raw;
    // `on`, not `once`: a response closes once, and `once` costs a wrapper and a bound function each.
    res.on('close', () => {
      record.responseClosed(res.statusCode, res.writableFinished);
    });
    done();
  });
}

/** Builds the service; never listens. */
export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  // The route table is filled as routes register; errors found before routing read it too.
  const routes = new RouteTable();
  routes.declarePrefix('/v1/', 'anthropic');
  const app = Fastify({
    loggerInstance: deps.logger,
    // One line per request is written by the request log subscriber instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.maxBodyBytes,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: {
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false },
    },
    ...connectionOptions(config),
    ...clientErrorOptions(routes),
  });
  installConnectionLimits(app, config.maxConnections, deps.metrics);

  const events = new RequestEvents();
  // The limits are settled first: a client that reads the log line (or the metrics) sees settled counts.
  installRequestPipeline(app, events);
  events.subscribe(requestLog);
  if (deps.metrics) events.subscribe(requestMetrics(deps.metrics));
  installRequestRecords(app, events, config.prices);
  installClientErrors(app);
  const usage =
    deps.usage ??
    createUsageStore(config, () => {
      deps.metrics?.redisErrors.inc();
    });
  if (deps.usage === undefined) app.addHook('onClose', () => usage.close());
  events.subscribe(usageRecorder(usage, config.prices));
  for (const subscriber of deps.subscribers ?? []) events.subscribe(subscriber);
  if (config.corsOrigins.length > 0) await app.register(cors, corsOptions(config.corsOrigins));
  installAuthentication(app, deps.guard);
  routes.watch(app);
  app.decorate('routeTable', routes);
  installErrorHandling(app, routes);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  const info = {
    title: 'LLM Connector',
    version: VERSION,
    description: 'Streams answers from Anthropic Claude as Server-Sent Events, with honest errors.',
  };
  await app.register(swagger, { openapi: { info, servers: [{ url: '/' }] } });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());

  const answers = config.answers.enabled
    ? new AnswerService({
        store:
          deps.answerStore ??
          new MemoryAnswerStore({
            ttlMs: config.answers.ttlMs,
            maxBytes: config.answers.memoryBytes,
            onEvicted: () => {
              deps.metrics?.answersEvicted.inc();
            },
          }),
        settings: config.answers,
        config,
        logger: deps.logger,
        metrics: deps.metrics,
      })
    : null;
  app.decorate('answers', answers);
  if (answers) {
    app.addHook('onClose', async () => {
      await answers.drain(deps.answerDrainMs ?? 0);
      await answers.store.close();
    });
  }
  const pipeline: PipelineDeps = {
    config,
    upstream: deps.upstream,
    guard: deps.guard,
    metrics: deps.metrics,
    events,
    answers: answers ?? undefined,
  };
  await app.register(systemRoutes({ ...deps, metricsRequireKey: config.metricsRequireKey }));
  await app.register(queryRoutes(pipeline));
  if (answers) await app.register(answerRoutes(pipeline, answers.store));
  await app.register(playgroundRoutes);
  await app.register(anthropicRoutes(pipeline));
  await app.register(chatCompletionsRoutes(pipeline));
  await app.register(reportRoutes({ ...pipeline, usage }));
  return app;
}
