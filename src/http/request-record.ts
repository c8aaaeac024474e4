import type { Usage } from '../anthropic/message-stream.ts';
import { costOf, type PriceTable } from '../pricing/cost.ts';
import type { FallbackTrace } from '../upstream/fallbacks.ts';

export type AnswerMode = 'plain' | 'resumable' | 'background';

export type Outcome =
  'ok' | 'client_error' | 'upstream_error' | 'stream_error' | 'client_closed' | 'internal_error';

/**
 * What one request did, emitted once when it is over (its response closed and its handler returned).
 * Facts only: the subscribers (the log line, the metrics, the limits' settlement) decide what to do
 * with them. Never holds the prompt or a key.
 */
export interface RequestFinished {
  readonly requestId: string;
  /** The route's URL pattern (e.g. `/v1/models/:id`), or `unmatched`. */
  readonly route: string;
  /** The client key's name; undefined when client keys are off. */
  readonly key: string | undefined;
  /** The model the client asked for (capped for logs), and the model that served (or last failed). */
  readonly modelRequested: string | undefined;
  readonly model: string | undefined;
  readonly status: number;
  readonly outcome: Outcome;
  readonly errorType: string | undefined;
  /** The answer's usage, partial for a cancelled or broken answer; undefined when no answer began. */
  readonly usage: Usage | undefined;
  readonly stopReason: string | null | undefined;
  /** The answer's cost in integer pico-dollars (1e-12 USD); null: the model has no known price; undefined: no usage. */
  readonly costPicoUsd: bigint | null | undefined;
  /** `plain`, or how a `/llm/query` answer outlives its connection (`resumable`, `background`). */
  readonly answerMode: AnswerMode;
  readonly attempts: number;
  readonly fallbacks: number;
  readonly upstreamStatus: number | undefined;
  /** The answer was streamed (counted in the open-streams gauge while it was). */
  readonly streamed: boolean;
  /** performance.now() at arrival; durations in milliseconds from it. */
  readonly startedAt: number;
  readonly ttfbMs: number | undefined;
  readonly durationMs: number;
  /** The service's own latency before the first byte (arrival → upstream sent, upstream answered → first byte). */
  readonly addedLatencyMs: number | undefined;
}

/** Client strings that reach a log line or a label are cut to this length. */
export const MAX_LOGGED_CHARS = 200;

export function capped(value: string | undefined): string | undefined {
  return value === undefined || value.length <= MAX_LOGGED_CHARS
    ? value
    : `${value.slice(0, MAX_LOGGED_CHARS)}…`;
}

/**
 * The facts of one request, filled in along the way by the request pipeline (admission, the upstream
 * call, the answer) and by the error handler. `finished` builds the record exactly once, when both the
 * response has closed and the handler has returned: a client that leaves mid-stream closes the
 * response before the handler has read the answer's usage.
 */
export class RequestRecord implements FallbackTrace {
  readonly startedAt = performance.now();
  readonly route: string;
  readonly requestId: string;
  attempts = 0;
  upstreamStatus: number | undefined;
  upstreamSentAt: number | undefined;
  upstreamAnsweredAt: number | undefined;
  /** The requested model; after a fallback, the model that served (or last failed). */
  model: string | undefined;
  modelRequested: string | undefined;
  fallbacks = 0;
  keyName: string | undefined;
  firstByteAt: number | undefined;
  usage: Usage | undefined;
  stopReason: string | null | undefined;
  costPicoUsd: bigint | null | undefined;
  answerMode: AnswerMode = 'plain';
  errorType: string | undefined;
  outcome: Outcome | undefined;
  streamed = false;
  private handling = false;
  private closed: { status: number; finished: boolean; at: number } | undefined;
  private emitted = false;
  private readonly emit: (finished: RequestFinished) => void;
  private readonly prices: PriceTable;

  constructor(
    route: string,
    requestId: string,
    emit: (finished: RequestFinished) => void,
    prices: PriceTable,
  ) {
    this.route = route;
    this.requestId = requestId;
    this.emit = emit;
    this.prices = prices;
  }

  /**
   * The answer's cost from its usage and the model that served (a few integer products, no I/O);
   * kept once computed, so that a route that reported it to the client logs the same figure.
   */
  cost(): bigint | null | undefined {
    if (this.costPicoUsd === undefined && this.usage !== undefined)
      this.costPicoUsd = costOf(this.prices, this.model, this.usage);
    return this.costPicoUsd;
  }

  /** The model the client asked for; also the served model until a fallback answers. */
  requestModel(model: string | undefined): void {
    this.model = model;
    this.modelRequested = capped(model);
  }

  markFirstByte(): void {
    this.firstByteAt ??= performance.now();
  }

  /** The answer's usage and stop reason, and how it ended. */
  answered(result: {
    outcome: 'completed' | 'failed' | 'client_closed';
    failure: { type: string } | null;
    usage: Usage | undefined;
    stopReason: string | null | undefined;
  }): void {
    this.usage = result.usage;
    this.stopReason = result.stopReason;
    if (result.outcome === 'client_closed') this.outcome = 'client_closed';
    else if (result.failure) {
      this.outcome = 'stream_error';
      this.errorType = result.failure.type;
    }
  }

  /** The route handler starts: the record waits for `handlerDone()` as well as the response's close. */
  handlerStarted(): void {
    this.handling = true;
  }

  handlerDone(): void {
    this.handling = false;
    this.maybeEmit();
  }

  /** The response has closed (`finished`: it was sent in full). */
  responseClosed(status: number, finished: boolean): void {
    this.closed ??= { status, finished, at: performance.now() };
    this.maybeEmit();
  }

  private maybeEmit(): void {
    if (this.emitted || this.handling || this.closed === undefined) return;
    this.emitted = true;
    this.emit(this.toFinished(this.closed));
  }

  private toFinished({
    status,
    finished,
    at,
  }: {
    status: number;
    finished: boolean;
    at: number;
  }): RequestFinished {
    const outcome =
      this.outcome ??
      (!finished
        ? 'client_closed'
        : status >= 500
          ? 'upstream_error'
          : status >= 400
            ? 'client_error'
            : 'ok');
    const { startedAt, firstByteAt, upstreamSentAt, upstreamAnsweredAt } = this;
    const added =
      firstByteAt !== undefined && upstreamSentAt !== undefined && upstreamAnsweredAt !== undefined
        ? Math.max(0, upstreamSentAt - startedAt + (firstByteAt - upstreamAnsweredAt))
        : undefined;
    return {
      requestId: this.requestId,
      route: this.route,
      key: this.keyName,
      modelRequested: this.modelRequested,
      model: capped(this.model),
      status,
      outcome,
      errorType: this.errorType,
      usage: this.usage,
      stopReason: this.stopReason,
      costPicoUsd: this.cost(),
      answerMode: this.answerMode,
      attempts: this.attempts,
      fallbacks: this.fallbacks,
      upstreamStatus: this.upstreamStatus,
      streamed: this.streamed,
      startedAt,
      ttfbMs: firstByteAt === undefined ? undefined : firstByteAt - startedAt,
      durationMs: at - startedAt,
      addedLatencyMs: added,
    };
  }
}
