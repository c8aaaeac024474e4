import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConnectorError } from '../errors.ts';
import { cancelOnClientClose } from '../http/client-abort.ts';
import { guardedRoute, type PipelineDeps } from '../http/pipeline.ts';
import { ErrorBody, Usage } from '../http/query-schema.ts';
import { writeSseHead } from '../http/sse-writer.ts';
import { formatEvents, type AnswerStore, type StoredAnswer } from './answer-store.ts';
import { unavailable } from './detached-answers.ts';

/** How long `cancel` waits for the producer to end the answer before it answers with the snapshot as it is. */
const CANCEL_WAIT_MS = 2_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SEQ = /^\d{1,15}$/;

const IdParams = {
  type: 'object',
  required: ['id'],
  properties: {
    id: { type: 'string', description: 'The answer id (X-Answer-ID, `answer_id` of the start event)' },
  },
} as const;

const nullable = (schema: object) => ({ anyOf: [schema, { type: 'null' }] });

export const AnswerSnapshot = {
  type: 'object',
  required: ['id', 'status', 'model', 'text', 'stop_reason', 'usage', 'error'],
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: ['in_progress', 'completed', 'failed', 'cancelled'] },
    model: { type: 'string' },
    text: { type: 'string', description: 'All the text so far' },
    stop_reason: nullable({ type: 'string' }),
    usage: nullable(Usage),
    error: nullable({
      type: 'object',
      required: ['type', 'message'],
      properties: { type: { type: 'string' }, message: { type: 'string' } },
    }),
  },
} as const;

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: ErrorBody } },
});

/** The error answers of the three routes (the request never reaches the upstream). */
function answerErrors(extra: Record<number, string> = {}) {
  const responses: Record<number, ReturnType<typeof errorResponse>> = {
    401: errorResponse('Client keys are on and none, or a wrong one, was given'),
    404: errorResponse("No such answer: unknown, expired (ANSWER_TTL_SECONDS), or another key's"),
    429: errorResponse("The client key's RATE_LIMIT_RPM was reached (see Retry-After)"),
  };
  for (const [status, description] of Object.entries(extra))
    responses[Number(status)] = errorResponse(description);
  return responses;
}

const NOT_FOUND = 'No answer with this id: unknown, expired, or not yours';

function notFound(): ConnectorError {
  return new ConnectorError('not_found_error', 404, NOT_FOUND);
}

/** A store call that failed (Redis unreachable): 503, never a hang or a 500. */
function storeUnavailable(): never {
  throw unavailable();
}

/** The answer, if it exists and belongs to the request's key (another key gets the same 404 as an unknown id). */
async function ownAnswer(store: AnswerStore, request: FastifyRequest): Promise<StoredAnswer> {
  const { id } = request.params as { id: string };
  if (!UUID.test(id)) throw notFound();
  const answer = await store.get(id).catch(storeUnavailable);
  if (answer === null || answer.owner !== (request.client?.name ?? null)) throw notFound();
  return answer;
}

/** `Last-Event-ID` (what a reconnecting EventSource sends) or `?after=N`; 0 without either. */
export function resumePoint(request: FastifyRequest): number {
  const header = request.headers['last-event-id'];
  const query = (request.query as { after?: unknown }).after;
  const [name, raw] =
    header !== undefined ? ['The Last-Event-ID header', header] : ['The "after" parameter', query];
  if (raw === undefined) return 0;
  if (typeof raw !== 'string' || !SEQ.test(raw.trim())) {
    throw new ConnectorError(
      'invalid_request_error',
      400,
      `${name} must be a non-negative integer: the id of the last event received`,
    );
  }
  return Number(raw.trim());
}

/** `GET /llm/answers/{id}/events`, `GET /llm/answers/{id}`, `POST /llm/answers/{id}/cancel`. */
export function answerRoutes(deps: PipelineDeps, store: AnswerStore) {
  const { metrics } = deps;
  return (app: FastifyInstance, _options: unknown, done: () => void): void => {
    guardedRoute(app, deps, {
      method: 'GET',
      url: '/llm/answers/:id/events',
      exposeHeadRoute: false,
      schema: {
        summary: 'Follow a resumable or background answer (Server-Sent Events), from where you left it',
        description:
          'The same events, with the same ids and data, as the original stream. With `Last-Event-ID: N` (header) or `?after=N`, only the events after N, exactly once and in order; then the live answer until its last event (`done` or `error`). A finished answer is replayed at once.',
        params: IdParams,
        querystring: {
          type: 'object',
          properties: { after: { type: 'string', description: 'The id of the last event received' } },
        },
        response: {
          200: {
            description: "The answer's events (text/event-stream)",
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...answerErrors({ 400: 'Last-Event-ID or after is not a non-negative integer' }),
        },
      },
      handler: async (request, reply) => {
        const after = resumePoint(request);
        const answer = await ownAnswer(store, request);
        const { record } = request;
        const res = reply.raw;
        const { signal } = cancelOnClientClose(res);
        metrics?.answerResumes.inc();
        reply.hijack();
        record.streamed = true;
        record.markFirstByte();
        deps.events.streamStarted(record.route);
        writeSseHead(reply, { 'x-answer-id': answer.snapshot.id });
        res.flushHeaders();
        const keepAlive = setInterval(() => {
          res.write(': keep-alive\n\n');
        }, deps.config.keepAliveIntervalMs).unref();
        metrics?.answerFollowers.inc();
        try {
          for await (const batch of store.read(answer.snapshot.id, after, signal)) {
            keepAlive.refresh();
            if (!res.write(formatEvents(batch)) && !res.destroyed) {
              await new Promise<void>((resolve) => {
                const go = (): void => {
                  res.off('drain', go);
                  res.off('close', go);
                  resolve();
                };
                res.on('drain', go);
                res.on('close', go);
              });
            }
          }
        } catch (error) {
          request.log.warn(
            { err: error instanceof Error ? error.message : String(error) },
            'answer store failed',
          );
        } finally {
          clearInterval(keepAlive);
          metrics?.answerFollowers.dec();
          res.end();
        }
      },
    });

    guardedRoute(app, deps, {
      method: 'GET',
      url: '/llm/answers/:id',
      schema: {
        summary: 'The state of a resumable or background answer, and its text so far',
        params: IdParams,
        response: {
          200: { description: 'The answer as it is now', ...AnswerSnapshot },
          ...answerErrors(),
        },
      },
      handler: async (request, reply) => {
        const answer = await ownAnswer(store, request);
        await reply.code(200).send(answer.snapshot);
      },
    });

    guardedRoute(app, deps, {
      method: 'POST',
      url: '/llm/answers/:id/cancel',
      schema: {
        summary: 'Stop a resumable or background answer (from any replica)',
        description:
          'Its followers get a last `error` event of type `cancelled` and its snapshot says `cancelled`. Cancelling a finished answer changes nothing and returns its snapshot.',
        params: IdParams,
        response: {
          200: { description: 'The answer after the cancel', ...AnswerSnapshot },
          ...answerErrors(),
        },
      },
      handler: async (request, reply) => {
        const answer = await ownAnswer(store, request);
        const { id } = answer.snapshot;
        let after = answer;
        if (answer.snapshot.status === 'in_progress') {
          await store.cancel(id).catch(storeUnavailable);
          // Wait (a little) for the producer to end it: reading past every event ends with the answer.
          const wait = AbortSignal.timeout(CANCEL_WAIT_MS);
          for await (const batch of store.read(id, Number.MAX_SAFE_INTEGER, wait)) {
            if (batch.length > 0) break; // never: there are no events after MAX_SAFE_INTEGER
          }
          after = (await store.get(id)) ?? answer;
        }
        await reply.code(200).send(after.snapshot);
      },
    });
    done();
  };
}
