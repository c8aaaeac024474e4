import type { FastifyBaseLogger } from 'fastify';
import type { Usage } from '../anthropic/message-stream.ts';
import type { Lease } from '../limits/guard.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { FallbackTrace } from '../upstream/fallbacks.ts';
import type { PumpResult } from './message-pump.ts';

export type Outcome = 'ok' | 'client_error' | 'upstream_error' | 'stream_error' | 'client_closed' | 'internal_error';

/**
 * What one request did, filled in along the way; when the response closes it is logged once as one
 * JSON line and counted in the metrics. Never holds the prompt or a key.
 */
export class RequestRecord implements FallbackTrace {
  readonly startedAt = performance.now();
  readonly route: string;
  private readonly metrics: Metrics | undefined;
  attempts = 0;
  upstreamStatus: number | undefined;
  upstreamSentAt: number | undefined;
  upstreamAnsweredAt: number | undefined;
  /** The requested model; after a fallback, the model that served (or last failed). */
  model: string | undefined;
  /** How many fallback models were tried (FALLBACK_MODELS). */
  fallbacks = 0;
  /** Name of the client key, when client keys are on. */
  keyName: string | undefined;
  firstByteAt: number | undefined;
  usage: Usage | undefined;
  stopReason: string | null | undefined;
  errorType: string | undefined;
  outcome: Outcome | undefined;
  /** The limits' lease, settled from the real usage when the response closes. */
  lease: Lease | undefined;
  private streaming = false;
  /** The route handler is still running: the answer's usage may not be known yet. */
  private handling = false;
  private pendingClose: (() => void) | undefined;

  constructor(route: string, metrics?: Metrics) {
    this.route = route;
    this.metrics = metrics;
  }

  markFirstByte(): void {
    this.firstByteAt ??= performance.now();
  }

  /** An answer starts streaming: counted in the open-streams gauge until the response closes. */
  markStreaming(): void {
    this.markFirstByte();
    if (this.streaming) return;
    this.streaming = true;
    this.metrics?.openStreams.inc({ route: this.route });
  }

  finish(result: Pick<PumpResult, 'outcome' | 'failure' | 'reader'>): void {
    this.usage = result.reader.usage;
    this.stopReason = result.reader.stopReason;
    if (result.outcome === 'client_closed') this.outcome = 'client_closed';
    else if (result.failure) {
      this.outcome = 'stream_error';
      this.errorType = result.failure.type;
    }
  }

  /** The route handler starts; `close()` then waits for `handlerDone()`. */
  handlerStarted(): void {
    this.handling = true;
  }

  /** The route handler has returned (or thrown): the usage is final; a deferred close runs now. */
  handlerDone(): void {
    this.handling = false;
    const pending = this.pendingClose;
    this.pendingClose = undefined;
    pending?.();
  }

  /**
   * Called once, when the response has closed. The response can close before the route has read
   * the answer's usage (a client that leaves mid-stream; the last bytes flushed before the route's
   * continuation runs): the lease is then settled, and the line logged, once the handler returns.
   */
  close(logger: FastifyBaseLogger, status: number, finished: boolean): void {
    const now = performance.now();
    if (this.handling) {
      this.pendingClose = () => {
        this.closeNow(logger, status, finished, now);
      };
      return;
    }
    this.closeNow(logger, status, finished, now);
  }

  private closeNow(logger: FastifyBaseLogger, status: number, finished: boolean, now: number): void {
    if (this.lease) void this.lease.settle(this.usage);
    const outcome = this.outcome ?? (!finished ? 'client_closed' : status >= 500 ? 'upstream_error' : status >= 400 ? 'client_error' : 'ok');
    logger.info(
      {
        route: this.route,
        status,
        outcome,
        model: this.model,
        key: this.keyName,
        attempts: this.attempts,
        fallbacks: this.fallbacks,
        upstream_status: this.upstreamStatus,
        ttfb_ms: this.firstByteAt === undefined ? undefined : round(this.firstByteAt - this.startedAt),
        duration_ms: round(now - this.startedAt),
        input_tokens: this.usage?.input_tokens,
        output_tokens: this.usage?.output_tokens,
        stop_reason: this.stopReason,
        error_type: this.errorType,
      },
      'request',
    );
    if (this.metrics) this.count(this.metrics, status, outcome, now);
  }

  private count(metrics: Metrics, status: number, outcome: Outcome, now: number): void {
    const route = this.route;
    metrics.requests.inc({ route, status: String(status), outcome });
    metrics.duration.observe({ route }, (now - this.startedAt) / 1000);
    if (this.streaming) metrics.openStreams.dec({ route });
    if (this.attempts > 0) {
      metrics.upstreamAttempts.inc({ route, result: String(this.upstreamStatus ?? this.errorType ?? 'error') }, 1);
      if (this.attempts > 1) metrics.upstreamAttempts.inc({ route, result: 'retried' }, this.attempts - 1);
    }
    if (this.fallbacks > 0) metrics.fallbacks.inc({ route, model: this.model ?? 'unknown' }, this.fallbacks);
    if (this.errorType !== undefined && (outcome === 'upstream_error' || outcome === 'stream_error')) {
      metrics.upstreamErrors.inc({ route, type: this.errorType });
    }
    if (this.firstByteAt !== undefined) {
      metrics.timeToFirstByte.observe({ route }, (this.firstByteAt - this.startedAt) / 1000);
      if (this.upstreamSentAt !== undefined && this.upstreamAnsweredAt !== undefined) {
        const added = this.upstreamSentAt - this.startedAt + (this.firstByteAt - this.upstreamAnsweredAt);
        metrics.addedLatency.observe({ route }, Math.max(0, added) / 1000);
      }
    }
    if (this.usage) this.countTokens(metrics, this.usage);
  }

  private countTokens(metrics: Metrics, usage: Usage): void {
    // Literal label objects: spreading one shared object into each made this four times slower (~4 µs).
    const model = this.model ?? 'unknown';
    const key = this.keyName ?? '-';
    metrics.tokens.inc({ direction: 'input', model, key }, usage.input_tokens);
    metrics.tokens.inc({ direction: 'output', model, key }, usage.output_tokens);
    metrics.tokens.inc({ direction: 'cache_read', model, key }, usage.cache_read_input_tokens);
    metrics.tokens.inc({ direction: 'cache_creation', model, key }, usage.cache_creation_input_tokens);
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
