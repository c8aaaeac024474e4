import type { AttemptTrace, UpstreamAnswer, UpstreamClient, UpstreamRequest } from './anthropic-client.ts';

/**
 * FALLBACK_MODELS: when the requested model is overloaded (529, 503) or rate-limited (429) and its
 * retries are spent, the same request is sent again asking for the next model of the list. This all
 * happens inside `open`, before the client has seen a byte; a failure after that is never retried.
 */
export interface Fallbacks {
  /** The models to try after the requested one, in order. */
  readonly models: readonly string[];
  /** The request body asking for `model` instead; undefined when it cannot be rewritten. */
  bodyFor(model: string): string | Buffer | undefined;
}

/** What the caller learns besides the attempts: which model answered, after how many fallbacks. */
export interface FallbackTrace extends AttemptTrace {
  /** The model asked for last: after a successful open, the model that serves the answer. */
  model: string | undefined;
  fallbacks: number;
}

const FALLBACK_STATUSES = new Set([429, 503, 529]);

export const NO_FALLBACKS: Fallbacks = { models: [], bodyFor: () => undefined };

/** The models to try after `requested`: those after it in the list, or the whole list when it is not in it. */
export function fallbackChain(
  requested: string | undefined,
  configured: readonly string[],
): readonly string[] {
  if (requested === undefined || configured.length === 0) return [];
  return configured.slice(configured.indexOf(requested) + 1);
}

export function shouldFallBack(answer: UpstreamAnswer): boolean {
  return !answer.ok && FALLBACK_STATUSES.has(answer.statusCode);
}

async function openInTurn(
  upstream: UpstreamClient,
  request: UpstreamRequest,
  trace: FallbackTrace,
  fallbacks: Fallbacks,
): Promise<UpstreamAnswer> {
  let answer = await upstream.open(request, trace);
  for (const model of fallbacks.models) {
    if (!shouldFallBack(answer)) break;
    const body = fallbacks.bodyFor(model);
    if (body === undefined) break;
    trace.fallbacks++;
    trace.model = model;
    // Each model gets its own retries; no wait in between: the next model has capacity of its own.
    answer = await upstream.open({ ...request, body }, trace);
  }
  return answer;
}

/** `upstream.open`, then the fallback models in turn while the answer says overloaded or rate-limited. */
export function openWithFallbacks(
  upstream: UpstreamClient,
  request: UpstreamRequest,
  trace: FallbackTrace,
  fallbacks: Fallbacks,
): Promise<UpstreamAnswer> {
  return fallbacks.models.length === 0
    ? upstream.open(request, trace)
    : openInTurn(upstream, request, trace, fallbacks);
}
