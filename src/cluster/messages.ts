/**
 * What the primary and its workers tell each other over the cluster's IPC channel. Every message
 * carries a `type` starting with `llmc:`; anything else on the channel is ignored.
 */
export const DRAIN = 'llmc:drain';
/** Primary → every worker (on SIGHUP): re-read SERVICE_API_KEYS_FILE. */
export const RELOAD_KEYS = 'llmc:reload-keys';
/** Worker → primary: the cluster-wide metrics text, please; answered with METRICS_RESPONSE. */
export const METRICS_REQUEST = 'llmc:metrics-request';
export const METRICS_RESPONSE = 'llmc:metrics-response';
/** Primary → every ready worker: your registry as JSON; answered with REGISTRY_RESPONSE. */
export const REGISTRY_REQUEST = 'llmc:registry-request';
export const REGISTRY_RESPONSE = 'llmc:registry-response';

/** The environment variable that gives workers the URL of the simulated upstream the primary runs (--mock). */
export const MOCK_UPSTREAM_ENV = 'LLMC_CLUSTER_MOCK_UPSTREAM';

export interface DrainMessage {
  type: typeof DRAIN;
}

export interface ReloadKeysMessage {
  type: typeof RELOAD_KEYS;
}

export interface MetricsRequest {
  type: typeof METRICS_REQUEST;
  id: number;
}

export type MetricsResponse = { type: typeof METRICS_RESPONSE; id: number } & (
  { text: string } | { error: string }
);

export interface RegistryRequest {
  type: typeof REGISTRY_REQUEST;
  id: number;
}

export type RegistryResponse = { type: typeof REGISTRY_RESPONSE; id: number } & (
  { metrics: object[] } | { error: string }
);

export function isMessage<T extends { type: string }>(message: unknown, type: T['type']): message is T {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

/** Worker: calls `drain` when the primary asks it to stop taking requests and finish what is open. */
export function onDrainRequest(drain: () => void): void {
  process.on('message', (message: unknown) => {
    if (isMessage<DrainMessage>(message, DRAIN)) drain();
  });
}

/** Worker: calls `reload` when the primary passes on a SIGHUP. */
export function onReloadKeysRequest(reload: () => void): void {
  process.on('message', (message: unknown) => {
    if (isMessage<ReloadKeysMessage>(message, RELOAD_KEYS)) reload();
  });
}
