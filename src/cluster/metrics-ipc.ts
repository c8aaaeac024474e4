import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import {
  isMessage,
  METRICS_REQUEST,
  METRICS_RESPONSE,
  REGISTRY_REQUEST,
  REGISTRY_RESPONSE,
  type MetricsRequest,
  type MetricsResponse,
  type RegistryRequest,
  type RegistryResponse,
} from './messages.ts';

/**
 * `/metrics` across workers. Each worker counts in its own registry. A worker that is scraped asks
 * the primary; the primary asks every worker that is up for its registry as JSON, sums them with
 * prom-client's `AggregatorRegistry.aggregate` and sends the text back, so any worker shows totals.
 * If a worker does not answer in time the scrape fails, rather than show a part as the whole.
 */

/** How long the primary waits for the workers' registries. */
export const COLLECT_TIMEOUT_MS = 4_000;
/** How long a worker waits for the primary: longer, so that the primary's own error comes first. */
export const METRICS_TIMEOUT_MS = 5_000;

type Outcome<T> = T | { error: string };

const ignoreSendError = (): void => undefined;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Primary: answers workers' METRICS_REQUESTs with the aggregated metrics of `workers()`. */
export function serveClusterMetrics(workers: () => readonly Worker[], timeoutMs = COLLECT_TIMEOUT_MS): void {
  const collections = new Map<number, (response: RegistryResponse) => void>();
  let seq = 0;

  const collect = (asker: Worker, askId: number): void => {
    const id = ++seq;
    const asked = workers().filter((w) => w.isConnected());
    const parts: object[][] = [];
    let pending = asked.length;
    const timer = setTimeout(() => {
      answer({
        error: `${pending} of ${asked.length} workers did not send their metrics within ${timeoutMs} ms`,
      });
    }, timeoutMs);
    function answer(body: Outcome<{ text: string }>): void {
      if (!collections.delete(id)) return;
      clearTimeout(timer);
      const response: MetricsResponse = { type: METRICS_RESPONSE, id: askId, ...body };
      if (asker.isConnected()) asker.send(response, ignoreSendError);
    }
    collections.set(id, (response) => {
      if ('error' in response) {
        answer({ error: response.error });
        return;
      }
      parts.push(response.metrics);
      if (--pending > 0) return;
      // aggregate() may throw (an unknown aggregator): never in the primary's message handler.
      Promise.resolve(parts)
        .then((all) => AggregatorRegistry.aggregate(all).metrics())
        .then(
          (text) => {
            answer({ text });
          },
          (error: unknown) => {
            answer({ error: errorText(error) });
          },
        );
    });
    const request: RegistryRequest = { type: REGISTRY_REQUEST, id };
    for (const worker of asked) worker.send(request, ignoreSendError);
  };

  cluster.on('message', (worker: Worker, message: unknown) => {
    if (isMessage<MetricsRequest>(message, METRICS_REQUEST)) collect(worker, message.id);
    else if (isMessage<RegistryResponse>(message, REGISTRY_RESPONSE)) collections.get(message.id)?.(message);
  });
}

function sendToPrimary(message: object, onError: (error: Error) => void): void {
  if (process.send === undefined) {
    onError(new Error('not a cluster worker'));
    return;
  }
  process.send(message, (error: Error | null) => {
    if (error) onError(error);
  });
}

/**
 * Worker: answers the primary's REGISTRY_REQUESTs with `registry`, and returns how `/metrics`
 * gets the cluster-wide text (failing after `timeoutMs`).
 */
export function clusterMetricsSource(
  registry: Registry,
  timeoutMs = METRICS_TIMEOUT_MS,
): () => Promise<string> {
  const pending = new Map<
    number,
    { resolve(text: string): void; reject(error: Error): void; timer: NodeJS.Timeout }
  >();
  let seq = 0;
  const settle = (id: number, outcome: Outcome<{ text: string }>): void => {
    const request = pending.get(id);
    if (!request) return;
    pending.delete(id);
    clearTimeout(request.timer);
    if ('text' in outcome) request.resolve(outcome.text);
    else request.reject(new Error(`cluster metrics unavailable: ${outcome.error}`));
  };

  process.on('message', (message: unknown) => {
    if (isMessage<MetricsResponse>(message, METRICS_RESPONSE)) {
      settle(message.id, message);
    } else if (isMessage<RegistryRequest>(message, REGISTRY_REQUEST)) {
      const { id } = message;
      const reply = (body: Outcome<{ metrics: object[] }>): void => {
        const response: RegistryResponse = { type: REGISTRY_RESPONSE, id, ...body };
        sendToPrimary(response, ignoreSendError);
      };
      registry.getMetricsAsJSON().then(
        (metrics) => {
          reply({ metrics });
        },
        (error: unknown) => {
          reply({ error: errorText(error) });
        },
      );
    }
  });

  return () =>
    new Promise<string>((resolve, reject) => {
      const id = ++seq;
      const timer = setTimeout(() => {
        settle(id, { error: `no answer from the primary within ${timeoutMs} ms` });
      }, timeoutMs);
      pending.set(id, { resolve, reject, timer });
      const request: MetricsRequest = { type: METRICS_REQUEST, id };
      sendToPrimary(request, (error) => {
        settle(id, { error: error.message });
      });
    });
}
