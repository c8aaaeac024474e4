/**
 * The response side of an exchange: JSON and error answers, the models and count_tokens endpoints,
 * and the scenarios of POST /v1/messages (a message as JSON or as a paced SSE stream, or an error).
 */
import type { ServerResponse } from 'node:http';
import { buildFrames, makePlan, messageJson } from './message-render.ts';
import type { Plan } from './message-render.ts';
import { bodyProblem } from './requests.ts';
import { MODELS, promptText } from './simulated.ts';
import { SsePlayer } from './sse-player.ts';
import type { ErrorScenario, Exchange, MessageScenario, RecordedRequest } from './types.ts';
import { ERROR_MESSAGES, errorBody, errorTypeFor, invalid, isObject, notFound, spacedJson } from './wire.ts';
import type { HeaderMap, JsonObject, Problem, Serialize } from './wire.ts';

const SIMULATED_DELTA_DELAY_MS = 25;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: HeaderMap = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

export function sendProblem(ex: Exchange, problem: Problem, headers: HeaderMap = {}): void {
  sendJson(ex.res, problem.status, errorBody(problem.type, problem.message, ex.requestId), headers);
}

/** The JSON object body, or undefined after answering the validation error. */
export function validBody(
  ex: Exchange,
  rec: RecordedRequest,
  needMaxTokens: boolean,
): JsonObject | undefined {
  const body = rec.json;
  const problem = isObject(body)
    ? bodyProblem(body, needMaxTokens)
    : invalid('Request body must be a JSON object.');
  if (problem === undefined && isObject(body)) return body;
  sendProblem(ex, problem ?? invalid('Request body must be a JSON object.'));
  return undefined;
}

export function answerModel(ex: Exchange, rawId: string): void {
  const id = decodeURIComponent(rawId);
  const model = MODELS.find((m) => m.id === id);
  if (model === undefined) sendProblem(ex, notFound(`model: ${id}`));
  else sendJson(ex.res, 200, model);
}

export function answerCountTokens(ex: Exchange, rec: RecordedRequest): void {
  const body = validBody(ex, rec, false);
  if (body === undefined) return;
  sendJson(ex.res, 200, { input_tokens: Math.max(1, Math.ceil(promptText(body).length / 4)) });
}

export function answerMessage(
  ex: Exchange,
  s: MessageScenario,
  body: JsonObject,
  id: string,
  simulated: boolean,
): void {
  const plan = makePlan(s, body, id, simulated);
  const go =
    body.stream === true
      ? (): void => {
          streamMessage(ex, s, plan, simulated);
        }
      : (): void => {
          sendJson(ex.res, 200, messageJson(plan));
        };
  const delay = s.headersDelayMs ?? 0;
  if (delay > 0) ex.pacer.after(delay, go);
  else go();
}

function streamMessage(ex: Exchange, s: MessageScenario, plan: Plan, simulated: boolean): void {
  const ser: Serialize = s.spacedJson === true ? spacedJson : JSON.stringify;
  const frames = buildFrames(plan, s.pingAfterStart ?? true, ser);
  const chunking = s.chunking ?? 'event';
  const defaultDelay = simulated ? SIMULATED_DELTA_DELAY_MS : 0;
  const delayMs = chunking === 'coalesce' ? 0 : (s.deltaDelayMs ?? defaultDelay);
  ex.res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
  });
  new SsePlayer(ex.res, frames, { delayMs, fault: s.fault, chunking, ser }, ex.pacer).run();
}

export function answerError(ex: Exchange, s: ErrorScenario): void {
  const headers: HeaderMap = {};
  if (s.retryAfter !== undefined) headers['retry-after'] = s.retryAfter;
  if (s.retryAfterMs !== undefined) headers['retry-after-ms'] = s.retryAfterMs;
  if (s.shouldRetry !== undefined) headers['x-should-retry'] = String(s.shouldRetry);
  const type = s.errorType ?? errorTypeFor(s.status);
  const message = s.message ?? ERROR_MESSAGES[type] ?? `Simulated ${type} (HTTP ${s.status})`;
  const send = (): void => {
    sendProblem(ex, { status: s.status, type, message }, headers);
  };
  const delay = s.headersDelayMs ?? 0;
  if (delay > 0) ex.pacer.after(delay, send);
  else send();
}
