import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  RouteHandlerMethod,
} from 'fastify';
import type { Usage } from '../anthropic/message-stream.ts';
import { ConnectorError } from '../errors.ts';
import type { Config } from '../config.ts';
import type { ClientKey } from '../limits/client-keys.ts';
import { rejectionError, type CostEstimate, type Guard, type Lease } from '../limits/guard.ts';
import { worstCaseCost } from '../pricing/cost.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { UpstreamAnswer, UpstreamClient, UpstreamRequest } from '../upstream/anthropic-client.ts';
import { NO_FALLBACKS, openWithFallbacks, type Fallbacks } from '../upstream/fallbacks.ts';
import { mapUpstreamStatus } from '../upstream/map-status.ts';
import { cancelOnClientClose } from './client-abort.ts';
import type { Cancel } from '../cancel.ts';
import type { ErrorShape } from './error-shapes.ts';
import type { PumpHooks } from './message-pump.ts';
import type { RequestEvents } from './request-events.ts';
import type { AnswerMode, RequestRecord } from './request-record.ts';
import { setServedModel } from './served-model.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Client keys and limits apply: set by `answerRoute` only, whose handler admits before anything else. */
    guarded?: boolean;
    /** Client keys (only) apply to this route, e.g. /metrics with METRICS_REQUIRE_KEY. */
    authenticated?: boolean;
  }
  interface FastifyRequest {
    client: ClientKey | null;
    /** The limits' lease of an admitted request, settled when the request is finished. */
    lease: Lease | null;
  }
}

/** What an API adapter read from the request: what to ask the upstream, and what to reserve. */
export interface UpstreamCall {
  /** The upstream request, but for its cancellation (the pipeline's). */
  readonly upstream: Omit<UpstreamRequest, 'cancel'>;
  /** Headers for the answer, whatever it turns out to be (set before admission). */
  readonly replyHeaders?: Record<string, string>;
  /** The model asked for (for the record and the fallbacks). */
  readonly model: string | undefined;
  /** Tokens to reserve against the client's limits before its usage is known (its max_tokens). */
  readonly reserveTokens: number;
  /** Other models to ask when this one is overloaded; the answer then names its model in `x-served-model`. */
  readonly fallbacks?: Fallbacks;
  /** `resumable` or `background`: the answer outlives its connection (see `DetachedAnswers`). Default `plain`. */
  readonly answerMode?: AnswerMode | undefined;
}

/** An upstream answer that has begun (2xx), its body still to be read. */
export type OpenedAnswer = Extract<UpstreamAnswer, { ok: true }>;
/** A final upstream error answer (retries and fallbacks spent), its body read. */
export type RefusedAnswer = Extract<UpstreamAnswer, { ok: false }>;

/** How an answer ended, for the record (and through it the log, the metrics, the limits). */
export interface AnswerResult {
  outcome: 'completed' | 'failed' | 'client_closed';
  failure: { type: string; message: string } | null;
  usage: Usage | undefined;
  stopReason: string | null | undefined;
}

/** What an adapter's answer needs: the request and reply, the settings, the record. */
export interface Exchange {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly record: RequestRecord;
  readonly config: Config;
  /** Call before the head of a streamed answer is written. */
  streamStarted(): void;
}

/**
 * One API's part of the pipeline: how to read its requests, and how to frame its answers and errors.
 * Everything else (admission, fallbacks, status mapping, the served-model header, cancellation, the
 * retry-header policy, the record) is the pipeline's.
 */
export interface ApiAdapter<C extends UpstreamCall = UpstreamCall> {
  /** Reads and checks the request; throws a 4xx ConnectorError. Runs before admission: nothing is counted yet. */
  read(request: FastifyRequest, config: Config): C;
  /**
   * The upstream refused (retries and fallbacks spent). Default: the mapped ConnectorError is thrown and
   * rendered in the route's error shape. A passthrough relays the upstream's own answer instead.
   */
  refused?(exchange: Exchange, call: C, answer: RefusedAnswer): Promise<void>;
  /** Writes the begun answer (streamed or whole) and says how it ended. */
  answer(exchange: Exchange, call: C, answer: OpenedAnswer): Promise<AnswerResult>;
  /** The API's events for a resumable or background answer (only adapters that offer them). */
  framing?(request: FastifyRequest, call: C, answerId: string): AnswerFraming;
}

/** How an API frames a resumable answer as numbered SSE events (see src/answers). */
export interface AnswerFraming {
  /** The first event, once the answer has begun; `model` is the one that serves. */
  start(model: string): { event: string; data: string };
  /** The pump's readers; `emit` adds an event and the text it adds to the answer ('' when none). */
  readers(
    emit: (event: string, data: string, text: string) => void,
  ): Pick<PumpHooks, 'onTextLiteral' | 'onEvent'>;
  /** The last event of a complete answer. */
  done(stopReason: string | null, usage: Usage): { event: string; data: string };
  /** The last event of an answer that failed or was stopped. */
  error(failure: { type: string; message: string }): { event: string; data: string };
}

/** Runs the answers that outlive their connection (`resumable`, `background`); see src/answers. */
export interface DetachedAnswers {
  handle(
    deps: PipelineDeps,
    adapter: ApiAdapter,
    request: FastifyRequest,
    reply: FastifyReply,
    call: UpstreamCall,
  ): Promise<void>;
}

export interface PipelineDeps {
  config: Config;
  upstream: UpstreamClient;
  guard?: Guard | undefined;
  metrics?: Metrics | undefined;
  events: RequestEvents;
  /** Resumable and background answers; undefined when they are off. */
  answers?: DetachedAnswers | undefined;
}

export interface AnswerRouteOptions<C extends UpstreamCall> {
  method: 'GET' | 'POST';
  url: string;
  schema: FastifySchema;
  errorShape: ErrorShape;
  adapter: ApiAdapter<C>;
}

/** Marks the handlers the pipeline built: a guarded route with any other handler is a start-up error. */
const ADMITS = Symbol('admits');

/**
 * Once the service has called the upstream, its retries (and fallbacks) were the only ones: every
 * error answer then says `x-should-retry: false`, so that an SDK in front does not multiply them.
 */
export function retryHeaders(record: Pick<RequestRecord, 'attempts'>): Record<string, string> {
  return record.attempts > 0 ? { 'x-should-retry': 'false' } : {};
}

/**
 * The most a Messages request can cost, for the dollar budgets (asked only when the client has
 * one): its upstream body's bytes as prompt tokens (a token of text is at least a byte) at the
 * dearest prompt price, plus `max_tokens` at the output price; the dearest of the requested model
 * and its fallbacks. Null when the requested model has no price.
 */
function costEstimate(config: Config, call: UpstreamCall): CostEstimate | undefined {
  const { upstream } = call;
  if (upstream.path !== '/v1/messages') return undefined;
  return {
    model: call.model,
    worstCase() {
      const body = upstream.body;
      const promptTokens = body === undefined ? 0 : Buffer.byteLength(body);
      let worst = worstCaseCost(config.prices, call.model, promptTokens, call.reserveTokens);
      if (worst === null) return null;
      for (const model of call.fallbacks?.models ?? []) {
        const other = worstCaseCost(config.prices, model, promptTokens, call.reserveTokens);
        if (other !== null && other > worst) worst = other;
      }
      return worst;
    },
  };
}

/**
 * Checks the client's limits and throws the 429/503 with its headers set on the reply. A call
 * reserves its tokens (and, for a client with a dollar budget, its worst-case cost);
 * `'request-only'` is a request that never calls the upstream and holds nothing (e.g. reading a
 * stored answer or a report): it counts against `rpm` only and takes no upstream slot.
 */
export async function admit(
  deps: Pick<PipelineDeps, 'guard' | 'metrics' | 'config'>,
  request: FastifyRequest,
  reply: FastifyReply,
  call: UpstreamCall | 'request-only',
  cancel?: Cancel,
): Promise<void> {
  const { guard } = deps;
  if (!guard) return;
  const admission =
    call === 'request-only'
      ? await guard.countRequest(request.client)
      : await guard.admit(request.client, call.reserveTokens, cancel, costEstimate(deps.config, call));
  void reply.headers(admission.headers);
  if (!admission.ok) {
    if (admission.status !== 400)
      deps.metrics?.rateLimitRejections.inc({
        key: request.client?.name ?? 'anonymous',
        reason: admission.reason,
      });
    throw rejectionError(admission);
  }
  request.record.keyName = admission.client;
  request.lease = admission.lease;
}

function handlerFor<C extends UpstreamCall>(deps: PipelineDeps, adapter: ApiAdapter<C>): RouteHandlerMethod {
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const { record } = request;
    const call = adapter.read(request, deps.config);
    record.requestModel(call.model);
    if (call.replyHeaders) void reply.headers(call.replyHeaders);
    if (call.answerMode !== undefined && call.answerMode !== 'plain') {
      if (!deps.answers) throw answersOff();
      await deps.answers.handle(deps, adapter, request, reply, call);
      return;
    }
    const cancel = cancelOnClientClose(reply.raw);
    await admit(deps, request, reply, call, cancel);
    const { fallbacks } = call;
    const opened = await openWithFallbacks(
      deps.upstream,
      { ...call.upstream, cancel },
      record,
      fallbacks ?? NO_FALLBACKS,
    );
    const exchange: Exchange = {
      request,
      reply,
      record,
      config: deps.config,
      streamStarted: () => {
        record.streamed = true;
        record.markFirstByte();
        deps.events.streamStarted(record.route);
      },
    };
    if (!opened.ok) {
      if (adapter.refused) await adapter.refused(exchange, call, opened);
      else throw mapUpstreamStatus(opened.statusCode, opened.headers, opened.errorBody);
      return;
    }
    if (fallbacks) setServedModel(reply, record.model);
    record.answered(await adapter.answer(exchange, call, opened));
  };
  return Object.assign(handler, { [ADMITS]: true });
}

function answersOff(): ConnectorError {
  return new ConnectorError(
    'invalid_request_error',
    400,
    'Resumable and background answers are off on this service: send the request without "resumable" and "background"',
  );
}

/**
 * Registers a guarded route that never calls the upstream (e.g. the stored answers'): its request is
 * authenticated and counted against the client's `rpm` only (never refused for tokens or open streams: a
 * client must be able to read the answer it paid for), takes no slot, then `handler` runs.
 */
export function guardedRoute(
  app: FastifyInstance,
  deps: Pick<PipelineDeps, 'guard' | 'metrics' | 'config'>,
  options: {
    method: 'GET' | 'POST';
    url: string;
    schema: FastifySchema;
    /** A GET route also answers HEAD unless this is false (e.g. an event stream). */
    exposeHeadRoute?: boolean;
    /** The shape of its error answers; default the service's own. */
    errorShape?: ErrorShape;
    handler: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  },
): void {
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    await admit(deps, request, reply, 'request-only');
    // Counted in rpm at admission; it holds nothing while it runs.
    await request.lease?.settle();
    await options.handler(request, reply);
  };
  app.route({
    method: options.method,
    url: options.url,
    schema: options.schema,
    config: { guarded: true, errorShape: options.errorShape ?? 'default' },
    exposeHeadRoute: options.exposeHeadRoute ?? true,
    handler: Object.assign(handler, { [ADMITS]: true }),
  });
}

/** Registers a route that answers from the upstream: authenticated, admitted, then the adapter's answer. */
export function answerRoute<C extends UpstreamCall>(
  app: FastifyInstance,
  deps: PipelineDeps,
  options: AnswerRouteOptions<C>,
): void {
  app.route({
    method: options.method,
    url: options.url,
    schema: options.schema,
    config: { guarded: true, errorShape: options.errorShape },
    handler: handlerFor(deps, options.adapter),
  });
}

/**
 * Installs what every request goes through: its record (finished once, to `events`), and on guarded
 * routes a handler that admits before it reaches the upstream. A route that says it is guarded but was
 * not built by `answerRoute` stops the start-up.
 */
export function installRequestPipeline(app: FastifyInstance, events: RequestEvents): void {
  app.decorateRequest('lease', null);
  app.addHook('onRoute', (route) => {
    const guarded = route.config?.guarded === true;
    const admits = (route.handler as { [ADMITS]?: boolean })[ADMITS] === true;
    if (guarded !== admits) {
      throw new Error(
        `${String(route.method)} ${route.url}: guarded routes must be registered with answerRoute (which admits), and only they`,
      );
    }
    if (!guarded) return;
    // The record waits for the handler as well as the response's close: the usage is known only then.
    const handler = route.handler;
    route.handler = async function (this: FastifyInstance, request, reply) {
      request.record.handlerStarted();
      try {
        await handler.call(this, request, reply);
      } finally {
        request.record.handlerDone();
      }
    };
  });
  events.subscribe({
    finished(finished, request) {
      void request.lease?.settle(finished.usage, finished.costPicoUsd);
    },
  });
}
