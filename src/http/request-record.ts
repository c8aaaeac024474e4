import type { FastifyBaseLogger } from 'fastify';
import type { Usage } from '../anthropic/message-stream.ts';
import type { AttemptTrace } from '../upstream/anthropic-client.ts';
import type { PumpResult } from './message-pump.ts';

export type Outcome = 'ok' | 'client_error' | 'upstream_error' | 'stream_error' | 'client_closed' | 'internal_error';

/** What one request did, filled in along the way and logged once as one JSON line when it closes. */
export class RequestRecord implements AttemptTrace {
  readonly startedAt = performance.now();
  attempts = 0;
  upstreamStatus: number | undefined;
  model: string | undefined;
  firstByteAt: number | undefined;
  usage: Usage | undefined;
  stopReason: string | null | undefined;
  errorType: string | undefined;
  outcome: Outcome | undefined;

  markFirstByte(): void {
    this.firstByteAt ??= performance.now();
  }

  finish(result: PumpResult): void {
    this.usage = result.reader.usage;
    this.stopReason = result.reader.stopReason;
    if (result.outcome === 'client_closed') this.outcome = 'client_closed';
    else if (result.failure) {
      this.outcome = 'stream_error';
      this.errorType = result.failure.type;
    }
  }

  /** Logs the line; never the prompt, never a key. */
  log(logger: FastifyBaseLogger, route: string, status: number, finished: boolean): void {
    const now = performance.now();
    const outcome = this.outcome ?? (!finished ? 'client_closed' : status >= 500 ? 'upstream_error' : status >= 400 ? 'client_error' : 'ok');
    logger.info(
      {
        route,
        status,
        outcome,
        model: this.model,
        attempts: this.attempts,
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
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
