import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { AnswerSettings, Config } from '../config.ts';
import { ConnectorError } from '../errors.ts';
import {
  admit,
  type AnswerFraming,
  type ApiAdapter,
  type DetachedAnswers,
  type PipelineDeps,
  type UpstreamCall,
} from '../http/pipeline.ts';
import { setServedModel } from '../http/served-model.ts';
import { writeSseHead } from '../http/sse-writer.ts';
import type { Metrics } from '../observability/metrics.ts';
import { NO_FALLBACKS, openWithFallbacks } from '../upstream/fallbacks.ts';
import { mapUpstreamStatus } from '../upstream/map-status.ts';
import type { UpstreamBody } from '../upstream/upstream-body.ts';
import { AnswerRun, type RunEnd } from './answer-run.ts';
import type { AnswerError, AnswerProducer, AnswerStore } from './answer-store.ts';
import { Cancel } from '../cancel.ts';

export interface AnswerServiceOptions {
  readonly store: AnswerStore;
  readonly settings: AnswerSettings;
  readonly config: Config;
  readonly logger: FastifyBaseLogger;
  readonly metrics?: Metrics | undefined;
}

export function unavailable(): ConnectorError {
  return new ConnectorError(
    'overloaded_error',
    503,
    'Resumable answers are unavailable right now (their store cannot be reached); retry shortly, or ask without "resumable" and "background"',
    { retryAfter: '1' },
  );
}

function asAnswerError(error: unknown): AnswerError {
  if (error instanceof ConnectorError) return { type: error.type, message: error.message };
  return { type: 'internal_error', message: 'The answer could not be started' };
}

/**
 * The answers of `/llm/query` that outlive their connection (`"resumable": true`, `"background":
 * true`): they run here, in the process whose request called the upstream, and live in the answer
 * store, where any replica can follow, snapshot or cancel them. Each holds its request (its record,
 * hence its limits' lease) until it ends, not until its client leaves.
 */
export class AnswerService implements DetachedAnswers {
  readonly store: AnswerStore;
  readonly #options: AnswerServiceOptions;
  readonly #runs = new Set<AnswerRun>();
  /** Answers being started or running here (a background answer holds no connection: this bounds them). */
  #active = 0;
  #draining: Promise<void> | undefined;

  constructor(options: AnswerServiceOptions) {
    this.store = options.store;
    this.#options = options;
  }

  /** Answers running in this process. */
  get running(): number {
    return this.#runs.size;
  }

  async handle(
    deps: PipelineDeps,
    adapter: ApiAdapter,
    request: FastifyRequest,
    reply: FastifyReply,
    call: UpstreamCall,
  ): Promise<void> {
    const mode = call.answerMode === 'background' ? 'background' : 'resumable';
    const { record } = request;
    record.answerMode = mode;
    if (this.#draining) {
      throw new ConnectorError('overloaded_error', 503, 'The service is shutting down; retry', {
        retryAfter: '1',
      });
    }
    // Redis known to be down: refuse before paying for an upstream request.
    if (this.store.healthy?.() === false) throw unavailable();
    // An answer that outlives its connection is still bounded: as many as MAX_CONNECTIONS per process.
    const cap = this.#options.config.maxConnections;
    if (cap > 0 && this.#active >= cap) {
      throw new ConnectorError(
        'overloaded_error',
        503,
        `Too many resumable and background answers running (at most ${cap}, MAX_CONNECTIONS); retry shortly`,
        { retryAfter: '1' },
      );
    }
    this.#active++;
    try {
      await this.#handle(deps, adapter, request, reply, call, mode);
    } finally {
      this.#active--;
    }
  }

  async #handle(
    deps: PipelineDeps,
    adapter: ApiAdapter,
    request: FastifyRequest,
    reply: FastifyReply,
    call: UpstreamCall,
    mode: 'resumable' | 'background',
  ): Promise<void> {
    const { record } = request;
    const id = randomUUID();
    if (!adapter.framing) throw new Error(`${record.route} offers no resumable answers`);
    const framing = adapter.framing(request, call, id);
    const owner = request.client?.name ?? null;
    const requested = call.model ?? this.#options.config.defaultModel;
    // Until the client has the answer's id, a client that leaves takes its request with it.
    const upstream = new Cancel();
    const res = reply.raw;
    let begun = false;
    res.once('close', () => {
      if (!begun && !res.writableFinished) upstream.abort();
    });
    await admit(deps, request, reply, call, upstream);
    const open = () =>
      openWithFallbacks(
        deps.upstream,
        { ...call.upstream, cancel: upstream },
        record,
        call.fallbacks ?? NO_FALLBACKS,
      );

    if (mode === 'background') {
      const producer = await this.#create({ id, owner, model: requested, requestId: request.id });
      begun = true;
      this.#options.metrics?.answersStarted.inc({ mode });
      void reply
        .code(202)
        .headers({ location: `/llm/answers/${id}`, 'x-answer-id': id })
        .send({ id, status: 'in_progress', model: requested });
      const cancelled = (): void => {
        upstream.abort();
      };
      producer.cancelRequested.addEventListener('abort', cancelled, { once: true });
      let failure: AnswerError | null = null;
      let opened: Awaited<ReturnType<typeof open>> | null = null;
      try {
        opened = await open();
        if (!opened.ok) {
          failure = asAnswerError(mapUpstreamStatus(opened.statusCode, opened.headers, opened.errorBody));
        }
      } catch (error) {
        failure = asAnswerError(error);
      }
      producer.cancelRequested.removeEventListener('abort', cancelled);
      if (failure !== null || opened === null || !opened.ok) {
        await this.#failedToBegin(producer, framing, failure, request);
        return;
      }
      const model = record.model ?? requested;
      await this.#run(request, {
        producer,
        framing,
        body: opened.body,
        live: null,
        liveChunked: false,
        upstream,
        graceMs: null,
        model,
      });
      return;
    }

    const opened = await open();
    if (!opened.ok) throw mapUpstreamStatus(opened.statusCode, opened.headers, opened.errorBody);
    const served = record.model ?? requested;
    let producer: AnswerProducer;
    try {
      producer = await this.#create({ id, owner, model: served, requestId: request.id });
    } catch (error) {
      opened.body.destroy();
      throw error;
    }
    begun = true;
    this.#options.metrics?.answersStarted.inc({ mode });
    if (call.fallbacks) setServedModel(reply, served);
    void reply.header('x-answer-id', id);
    reply.hijack();
    record.streamed = true;
    record.markFirstByte();
    deps.events.streamStarted(record.route);
    // After hijack, headers set on the reply (rate limits, CORS, request id) are only sent if written here.
    const chunked = writeSseHead(reply);
    await this.#run(request, {
      producer,
      framing,
      body: opened.body,
      live: res,
      liveChunked: chunked,
      model: served,
      upstream,
      graceMs: this.#options.settings.graceMs,
    });
  }

  /** Stops every running answer (`shutdown`: they end `failed`) and waits for them to be finished in the store. */
  async stopAll(): Promise<void> {
    const runs = [...this.#runs];
    for (const run of runs) run.stop('shutdown');
    await Promise.all(runs.map((run) => run.done));
  }

  /**
   * Refuses new answers, lets the running ones go on for up to `ms`, then stops the rest; resolves once
   * every answer has ended and was finished in the store. Later calls share the first.
   */
  drain(ms: number): Promise<void> {
    this.#draining ??= (async () => {
      const all = Promise.all([...this.#runs].map((run) => run.done));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      });
      await Promise.race([all, deadline]);
      clearTimeout(timer);
      await this.stopAll();
    })();
    return this.#draining;
  }

  async #create(answer: Parameters<AnswerStore['create']>[0]): Promise<AnswerProducer> {
    try {
      return await this.store.create(answer);
    } catch (error) {
      this.#storeFailed(error);
      throw unavailable();
    }
  }

  async #failedToBegin(
    producer: AnswerProducer,
    framing: AnswerFraming,
    failure: AnswerError | null,
    request: FastifyRequest,
  ): Promise<void> {
    const cancelled = producer.cancelRequested.aborted;
    const error = cancelled
      ? { type: 'cancelled', message: 'The answer was cancelled' }
      : (failure ?? { type: 'internal_error', message: 'The answer could not be started' });
    const last = framing.error(error);
    const { record } = request;
    record.outcome = cancelled ? 'client_closed' : 'upstream_error';
    record.errorType = error.type;
    await producer
      .finish({
        status: cancelled ? 'cancelled' : 'failed',
        events: [{ seq: 1, ...last }],
        text: '',
        stopReason: null,
        usage: null,
        error,
      })
      .catch((e: unknown) => {
        this.#storeFailed(e);
      });
  }

  async #run(
    request: FastifyRequest,
    o: {
      producer: AnswerProducer;
      framing: AnswerFraming;
      body: UpstreamBody;
      live: ServerResponse | null;
      liveChunked: boolean;
      model: string;
      upstream: Cancel;
      graceMs: number | null;
    },
  ): Promise<void> {
    const { record } = request;
    const { metrics, config } = this.#options;
    const run = new AnswerRun({
      producer: o.producer,
      body: o.body,
      framing: o.framing,
      model: o.model,
      live: o.live,
      liveChunked: o.liveChunked,
      abortUpstream: () => {
        o.upstream.abort();
      },
      config,
      graceMs: o.graceMs,
      storeFailed: (error) => {
        this.#storeFailed(error);
      },
      onGraceExpired: () => metrics?.answerGraceExpiries.inc(),
      onCancelled: () => metrics?.answerCancels.inc(),
    });
    this.#runs.add(run);
    let end: RunEnd;
    try {
      end = await run.done;
    } finally {
      this.#runs.delete(run);
    }
    record.usage = end.usage;
    record.stopReason = end.pump.reader.stopReason;
    if (end.status === 'completed') record.outcome = 'ok';
    else if (end.stopped === 'cancelled' || end.stopped === 'grace') record.outcome = 'client_closed';
    else {
      record.outcome = 'stream_error';
      record.errorType = end.error?.type;
    }
  }

  #storeFailed(error: unknown): void {
    this.#options.logger.warn(
      { err: error instanceof Error ? error.message : String(error) },
      'answer store failed',
    );
  }
}
