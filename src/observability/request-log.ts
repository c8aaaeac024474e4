import type { RequestFinished } from '../http/request-record.ts';
import { usdString } from '../pricing/cost.ts';
import type { RequestSubscriber } from '../http/request-events.ts';

function round(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.round(ms * 100) / 100;
}

/** The request's one log line (with the logger's request id), from its finished record. */
export function requestLogLine(f: RequestFinished): Record<string, unknown> {
  return {
    route: f.route,
    status: f.status,
    outcome: f.outcome,
    model: f.model,
    key: f.key,
    attempts: f.attempts,
    fallbacks: f.fallbacks,
    upstream_status: f.upstreamStatus,
    ttfb_ms: round(f.ttfbMs),
    duration_ms: round(f.durationMs),
    input_tokens: f.usage?.input_tokens,
    output_tokens: f.usage?.output_tokens,
    // A decimal string of dollars; null: the model has no known price (absent: no answer began).
    cost_usd:
      f.costPicoUsd === undefined ? undefined : f.costPicoUsd === null ? null : usdString(f.costPicoUsd),
    stop_reason: f.stopReason,
    error_type: f.errorType,
    answer_mode: f.answerMode === 'plain' ? undefined : f.answerMode,
  };
}

export const requestLog: RequestSubscriber = {
  finished(f, request) {
    request.log.info(requestLogLine(f), 'request');
  },
};
