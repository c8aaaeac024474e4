import { randomUUID } from 'node:crypto';
import type { RequestFinished } from '../http/request-record.ts';

/**
 * The routes whose requests are written to the ledger: those that ask the upstream for an answer
 * (or, for count_tokens, a count that Anthropic rate-limits), never /v1/models.
 */
export const LEDGER_ROUTES: ReadonlySet<string> = new Set([
  '/llm/query',
  '/v1/messages',
  '/v1/messages/count_tokens',
  '/v1/chat/completions',
]);

/** One row of the ledger table, as it waits in the buffer. */
export interface LedgerRow {
  /** Generated here: a batch written twice (its acknowledgement lost) is stored once. */
  readonly id: string;
  /** ISO 8601 UTC, the request's arrival. */
  readonly startedAt: string;
  readonly requestId: string;
  readonly keyName: string | null;
  readonly route: string;
  readonly modelRequested: string | null;
  readonly model: string | null;
  readonly status: number;
  readonly outcome: string;
  readonly errorType: string | null;
  readonly stopReason: string | null;
  readonly inputTokens: number | null;
  readonly outputTokens: number | null;
  readonly cacheWriteTokens: number | null;
  readonly cacheReadTokens: number | null;
  /** USD as an exact decimal string (from integer pico-dollars); null: unknown. */
  readonly costUsd: string | null;
  readonly ttfbMs: number | null;
  readonly durationMs: number;
  readonly answerMode: string;
  readonly attempts: number;
  readonly fallbacks: number;
  readonly upstreamStatus: number | null;
  /** Estimated memory held while the row waits (for LEDGER_BUFFER_BYTES). */
  readonly bytes: number;
}

const PICO_PER_USD = 1_000_000_000_000n;

/** Integer pico-dollars as an exact decimal string of USD: 1234567n → "0.000001234567". */
export function picoToUsd(pico: bigint): string {
  const negative = pico < 0n;
  const abs = negative ? -pico : pico;
  const whole = abs / PICO_PER_USD;
  const fraction = (abs % PICO_PER_USD).toString().padStart(12, '0');
  return `${negative ? '-' : ''}${whole.toString()}.${fraction}`;
}

/** A row's fixed cost in memory (object, numbers, id, time), before its strings' characters. */
const ROW_OVERHEAD_BYTES = 400;

function chars(value: string | null | undefined): number {
  return value === null || value === undefined ? 0 : value.length;
}

/** Milliseconds rounded to microseconds. */
function ms(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * The ledger row of a finished request, or undefined when it has none: only requests to an answer
 * route that reached the upstream (at least one attempt) are written. A request refused before
 * (bad input, a limit, an unknown key) cost nothing, and a client sending many of them must not push
 * the rows that did cost out of the buffer; such refusals are counted in the metrics and logged.
 */
export function rowOf(finished: RequestFinished, finishedAtMs: number): LedgerRow | undefined {
  if (finished.attempts === 0 || !LEDGER_ROUTES.has(finished.route)) return undefined;
  const { usage } = finished;
  const cost = finished.costPicoUsd;
  const row = {
    id: randomUUID(),
    startedAt: new Date(Math.round(finishedAtMs - finished.durationMs)).toISOString(),
    requestId: finished.requestId,
    keyName: finished.key ?? null,
    route: finished.route,
    modelRequested: finished.modelRequested ?? null,
    model: finished.model ?? null,
    status: finished.status,
    outcome: finished.outcome,
    errorType: finished.errorType ?? null,
    stopReason: finished.stopReason ?? null,
    inputTokens: usage?.input_tokens ?? null,
    outputTokens: usage?.output_tokens ?? null,
    cacheWriteTokens: usage?.cache_creation_input_tokens ?? null,
    cacheReadTokens: usage?.cache_read_input_tokens ?? null,
    costUsd: cost === null || cost === undefined ? null : picoToUsd(cost),
    ttfbMs: finished.ttfbMs === undefined ? null : ms(finished.ttfbMs),
    durationMs: ms(finished.durationMs),
    answerMode: finished.answerMode,
    attempts: finished.attempts,
    fallbacks: finished.fallbacks,
    upstreamStatus: finished.upstreamStatus ?? null,
    bytes: 0,
  };
  row.bytes =
    ROW_OVERHEAD_BYTES +
    2 *
      (chars(row.requestId) +
        chars(row.keyName) +
        chars(row.modelRequested) +
        chars(row.model) +
        chars(row.errorType) +
        chars(row.stopReason));
  return row;
}
