import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Tally } from './tally.ts';

/** Latency buckets in seconds: sub-millisecond resolution for the service's own overhead. */
const FAST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];
const SLOW_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Every metric of the service, in one registry that is passed in (no global default registry). */
export interface Metrics {
  readonly registry: Registry;
  /** The series every request moves are tallied (see Tally); the others are plain prom-client metrics. */
  readonly requests: Tally<'route' | 'status' | 'outcome'>;
  readonly upstreamAttempts: Tally<'route' | 'result'>;
  readonly upstreamErrors: Counter<'route' | 'type'>;
  readonly fallbacks: Counter<'route' | 'model'>;
  readonly timeToFirstByte: Histogram<'route'>;
  readonly duration: Histogram<'route'>;
  readonly addedLatency: Histogram<'route'>;
  readonly tokens: Tally<'direction' | 'model' | 'key'>;
  readonly cost: Tally<'model' | 'key'>;
  /** The exact sums behind `cost` (a float), in pico-dollars, by `key` then `model` label (this process only). */
  readonly costPicoUsd: Map<string, Map<string, bigint>>;
  readonly unpricedAnswers: Counter<'model'>;
  readonly openStreams: Tally<'route'>;
  readonly rateLimitRejections: Counter<'key' | 'reason'>;
  readonly redisErrors: Counter;
  readonly openConnections: Gauge;
  readonly connectionsRefused: Counter;
  readonly answersStarted: Counter<'mode'>;
  readonly answerResumes: Counter;
  readonly answerCancels: Counter;
  readonly answerGraceExpiries: Counter;
  readonly answersEvicted: Counter;
  readonly answerFollowers: Gauge;
  readonly logLinesDropped: Counter;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'llmc_' });
  const registers = [registry];
  return {
    registry,
    requests: Tally.counter({
      name: 'llmc_requests_total',
      help: 'Requests by route, status and outcome',
      labelNames: ['route', 'status', 'outcome'],
      registers,
    }),
    upstreamAttempts: Tally.counter({
      name: 'llmc_upstream_attempts_total',
      help: 'Upstream attempts by route and result (HTTP status, or error type for network failures)',
      labelNames: ['route', 'result'],
      registers,
    }),
    upstreamErrors: new Counter({
      name: 'llmc_upstream_errors_total',
      help: 'Requests that failed because of the upstream, by error type',
      labelNames: ['route', 'type'],
      registers,
    }),
    fallbacks: new Counter({
      name: 'llmc_fallbacks_total',
      help: 'Times a request moved on to the next FALLBACK_MODELS model, by route and the model it ended with',
      labelNames: ['route', 'model'],
      registers,
    }),
    timeToFirstByte: new Histogram({
      name: 'llmc_time_to_first_byte_seconds',
      help: 'From request arrival to the first byte of the answer',
      labelNames: ['route'],
      buckets: SLOW_BUCKETS,
      registers,
    }),
    duration: new Histogram({
      name: 'llmc_request_duration_seconds',
      help: 'From request arrival to the end of the answer',
      labelNames: ['route'],
      buckets: SLOW_BUCKETS,
      registers,
    }),
    addedLatency: new Histogram({
      name: 'llmc_added_latency_seconds',
      help: "The service's own latency before the first byte: request arrival → upstream request sent, plus upstream answer → first byte to the client",
      labelNames: ['route'],
      buckets: FAST_BUCKETS,
      registers,
    }),
    tokens: Tally.counter({
      name: 'llmc_tokens_total',
      help: 'Tokens by direction (input, output, cache_read, cache_creation), model and client key name',
      labelNames: ['direction', 'model', 'key'],
      registers,
    }),
    cost: Tally.counter({
      name: 'llmc_cost_usd_total',
      help: 'What the answers cost in US dollars (from their usage and the price table), by model and client key name',
      labelNames: ['model', 'key'],
      registers,
    }),
    costPicoUsd: new Map(),
    unpricedAnswers: new Counter({
      name: 'llmc_unpriced_answers_total',
      help: 'Answers whose model has no known price (their cost is unknown), by model',
      labelNames: ['model'],
      registers,
    }),
    openStreams: Tally.gauge({
      name: 'llmc_open_streams',
      help: 'Answers being streamed right now',
      labelNames: ['route'],
      registers,
    }),
    rateLimitRejections: new Counter({
      name: 'llmc_rate_limit_rejections_total',
      help: 'Requests refused by a limit, by key name and reason',
      labelNames: ['key', 'reason'],
      registers,
    }),
    redisErrors: new Counter({
      name: 'llmc_redis_errors_total',
      help: 'Redis calls that failed or timed out',
      registers,
    }),
    logLinesDropped: new Counter({
      name: 'llmc_log_lines_dropped_total',
      help: 'Log lines dropped because the log output was stuck with 16 MiB waiting to be written',
      registers,
    }),
    openConnections: new Gauge({
      name: 'llmc_open_connections',
      help: 'Client connections open right now (at most MAX_CONNECTIONS per process)',
      registers,
    }),
    connectionsRefused: new Counter({
      name: 'llmc_connections_refused_total',
      help: 'New client connections closed at once because MAX_CONNECTIONS were open, each with a request in flight',
      registers,
    }),
    answersStarted: new Counter({
      name: 'llmc_answers_started_total',
      help: 'Answers of /llm/query that outlive their connection, by mode (resumable, background)',
      labelNames: ['mode'],
      registers,
    }),
    answerResumes: new Counter({
      name: 'llmc_answer_resumes_total',
      help: 'Requests that followed a stored answer (GET /llm/answers/{id}/events)',
      registers,
    }),
    answerCancels: new Counter({
      name: 'llmc_answer_cancels_total',
      help: 'Answers stopped by POST /llm/answers/{id}/cancel while they ran',
      registers,
    }),
    answerGraceExpiries: new Counter({
      name: 'llmc_answer_grace_expiries_total',
      help: 'Resumable answers cancelled because nobody followed them when RESUME_GRACE_SECONDS ended',
      registers,
    }),
    answersEvicted: new Counter({
      name: 'llmc_answers_evicted_total',
      help: 'Ended answers forgotten before ANSWER_TTL_SECONDS to keep the in-memory answers within ANSWER_MEMORY_BYTES',
      registers,
    }),
    answerFollowers: new Gauge({
      name: 'llmc_answer_followers',
      help: 'Clients following a stored answer right now, in this process',
      registers,
    }),
  };
}
