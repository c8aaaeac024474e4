import type { RequestFinished } from '../http/request-record.ts';
import type { RequestSubscriber } from '../http/request-events.ts';
import { PICO_PER_USD } from '../pricing/cost.ts';
import type { Metrics } from './metrics.ts';

/** At most this many model names become label values; the rest count as `other` (clients choose the names). */
export const MAX_MODEL_LABELS = 64;

/** Counts each finished request in the metrics. */
export function requestMetrics(metrics: Metrics): RequestSubscriber {
  const models = new Set<string>();
  const modelLabel = (model: string | undefined): string => {
    if (model === undefined) return 'unknown';
    if (models.has(model)) return model;
    if (models.size >= MAX_MODEL_LABELS) return 'other';
    models.add(model);
    return model;
  };
  return {
    streamStarted(route) {
      metrics.openStreams.add(route, () => ({ route }), 1);
    },
    finished(f: RequestFinished) {
      const { route, status, outcome } = f;
      // Tally keys: the label values joined by NUL (no route, status, outcome, model label or key name holds one).
      metrics.requests.add(`${route}\0${status}\0${outcome}`, () => ({
        route,
        status: String(status),
        outcome,
      }));
      metrics.duration.observe({ route }, f.durationMs / 1000);
      if (f.streamed) metrics.openStreams.add(route, () => ({ route }), -1);
      if (f.attempts > 0) {
        const result = String(f.upstreamStatus ?? f.errorType ?? 'error');
        metrics.upstreamAttempts.add(`${route}\0${result}`, () => ({ route, result }));
        if (f.attempts > 1)
          metrics.upstreamAttempts.add(
            `${route}\0\0retried`,
            () => ({ route, result: 'retried' }),
            f.attempts - 1,
          );
      }
      const model = modelLabel(f.model);
      if (f.fallbacks > 0) metrics.fallbacks.inc({ route, model }, f.fallbacks);
      if (f.errorType !== undefined && (f.outcome === 'upstream_error' || f.outcome === 'stream_error')) {
        metrics.upstreamErrors.inc({ route, type: f.errorType });
      }
      if (f.ttfbMs !== undefined) metrics.timeToFirstByte.observe({ route }, f.ttfbMs / 1000);
      if (f.addedLatencyMs !== undefined) metrics.addedLatency.observe({ route }, f.addedLatencyMs / 1000);
      const usage = f.usage;
      if (usage === undefined) return;
      const key = f.key ?? '-';
      const series = `${model}\0${key}`;
      const { tokens } = metrics;
      tokens.add(`i\0${series}`, () => ({ direction: 'input', model, key }), usage.input_tokens);
      tokens.add(`o\0${series}`, () => ({ direction: 'output', model, key }), usage.output_tokens);
      tokens.add(
        `r\0${series}`,
        () => ({ direction: 'cache_read', model, key }),
        usage.cache_read_input_tokens,
      );
      tokens.add(
        `c\0${series}`,
        () => ({ direction: 'cache_creation', model, key }),
        usage.cache_creation_input_tokens,
      );
      const cost = f.costPicoUsd;
      if (cost === null) metrics.unpricedAnswers.inc({ model });
      else if (cost !== undefined) {
        let byModel = metrics.costPicoUsd.get(key);
        if (byModel === undefined) metrics.costPicoUsd.set(key, (byModel = new Map<string, bigint>()));
        byModel.set(model, (byModel.get(model) ?? 0n) + cost);
        // The counter is a float (Prometheus's kind); the exact sums are kept beside it.
        metrics.cost.add(series, () => ({ model, key }), Number(cost) / Number(PICO_PER_USD));
      }
    },
  };
}
