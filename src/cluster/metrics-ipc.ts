import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { isMessage, METRICS_REQUEST, METRICS_RESPONSE, type MetricsRequest, type MetricsResponse } from './messages.ts';

/**
 * `/metrics` across workers. Each worker counts in its own registry; prom-client's
 * AggregatorRegistry in the primary collects every worker's registry and sums them. A worker that
 * is scraped asks the primary for that cluster-wide text and serves it, so any worker shows totals.
 */

/** Longer than prom-client's own 5 s wait for the workers, so that its answer (or error) comes first. */
export const METRICS_TIMEOUT_MS = 6_000;

/** Primary: answers every worker's request with the metrics of all workers, aggregated. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker: Worker, message: unknown) => {
    if (!isMessage<MetricsRequest>(message, METRICS_REQUEST)) return;
    const { id } = message;
    const answer = (body: { text: string } | { error: string }): void => {
      const response: MetricsResponse = { type: METRICS_RESPONSE, id, ...body };
      // The worker may have gone meanwhile: the callback swallows the send error.
      if (worker.isConnected()) worker.send(response, () => undefined);
    };
    aggregator.clusterMetrics().then(
      (text) => {
        answer({ text });
      },
      (error: unknown) => {
        answer({ error: error instanceof Error ? error.message : String(error) });
      },
    );
  });
}

interface Pending {
  resolve(text: string): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Worker: offers `registry` to the primary's aggregation, and returns how `/metrics` gets the
 * cluster-wide text: one request to the primary, failing after `timeoutMs` (the scrape then fails
 * rather than show one worker's numbers as if they were the totals).
 */
export function clusterMetricsSource(registry: Registry, timeoutMs = METRICS_TIMEOUT_MS): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs prom-client's listener that answers the primary with this registry.
  new AggregatorRegistry();
  const pending = new Map<number, Pending>();
  let seq = 0;
  const settle = (id: number, outcome: { text: string } | { error: string }): void => {
    const request = pending.get(id);
    if (!request) return;
    pending.delete(id);
    clearTimeout(request.timer);
    if ('text' in outcome) request.resolve(outcome.text);
    else request.reject(new Error(`cluster metrics unavailable: ${outcome.error}`));
  };
  process.on('message', (message: unknown) => {
    if (isMessage<MetricsResponse>(message, METRICS_RESPONSE)) settle(message.id, message);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = ++seq;
      const timer = setTimeout(() => {
        settle(id, { error: `no answer from the primary within ${timeoutMs} ms` });
      }, timeoutMs);
      pending.set(id, { resolve, reject, timer });
      const request: MetricsRequest = { type: METRICS_REQUEST, id };
      if (process.send === undefined) settle(id, { error: 'not a cluster worker' });
      else
        process.send(request, (error: Error | null) => {
          if (error) settle(id, { error: error.message });
        });
    });
}
