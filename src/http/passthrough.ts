/** The Anthropic API relayed as it is: what `/v1/messages`, `count_tokens` and `/v1/models` share. */
import { emptyUsage, mergeUsage } from '../anthropic/message-stream.ts';
import { mapUpstreamStatus } from '../upstream/map-status.ts';
import {
  retryHeaders,
  type AnswerResult,
  type ApiAdapter,
  type Exchange,
  type OpenedAnswer,
  type UpstreamCall,
} from './pipeline.ts';
import { relayRawBody, relayRawStream } from './raw-relay.ts';
import { pickUpstreamHeaders } from './passthrough-headers.ts';
import { pendingHeaders } from './sse-writer.ts';

export interface RawCall extends UpstreamCall {
  /** The answer streams (SSE) and is relayed event by event. */
  readonly stream: boolean;
  /** The answer is a Messages answer whose usage is read. */
  readonly messages: boolean;
}

/** The usage and stop reason of a whole Messages answer, when it is one. */
function usageOf(bytes: Buffer | null): Pick<AnswerResult, 'usage' | 'stopReason'> {
  if (bytes === null) return { usage: undefined, stopReason: undefined };
  try {
    const message = JSON.parse(bytes.toString('utf8')) as {
      usage?: Parameters<typeof mergeUsage>[1];
      stop_reason?: string;
    };
    const usage = emptyUsage();
    mergeUsage(usage, message.usage);
    return { usage, stopReason: message.stop_reason ?? null };
  } catch {
    // Not JSON: nothing to count; the client got the bytes as they were.
    return { usage: undefined, stopReason: undefined };
  }
}

/** Writes the upstream's status and headers, then relays its body unchanged (a copy tapped for usage). */
export async function relay(exchange: Exchange, call: RawCall, answer: OpenedAnswer): Promise<AnswerResult> {
  const { reply, request, record } = exchange;
  reply.hijack();
  const res = reply.raw;
  const head = {
    ...pendingHeaders(reply),
    ...pickUpstreamHeaders(answer.headers),
    'x-request-id': request.id,
  };
  if (call.stream) {
    exchange.streamStarted();
    // As the service's other streams: no proxy in between may buffer or transform the events.
    res.writeHead(answer.statusCode, {
      ...head,
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    const result = await relayRawStream(answer.body, res, request.id, exchange.config);
    return {
      outcome: result.outcome,
      failure: result.failure,
      usage: result.reader.usage,
      stopReason: result.reader.stopReason,
    };
  }
  record.markFirstByte();
  res.writeHead(answer.statusCode, head);
  const { outcome, bytes } = await relayRawBody(answer.body, res);
  const read = call.messages ? usageOf(bytes) : { usage: undefined, stopReason: undefined };
  return { outcome: outcome === 'client_closed' ? 'client_closed' : 'completed', failure: null, ...read };
}

/**
 * The Anthropic API, relayed: the upstream's answer goes back as it is, error answers included, but
 * for one: a 401 or 403 refuses the service's own credentials (the client's key, if any, was checked
 * here), so the client gets a 502 saying so, never a hint that its own key is wrong.
 */
export const passthrough: Pick<ApiAdapter<RawCall>, 'refused' | 'answer'> = {
  async refused(exchange, _call, answer) {
    if (answer.statusCode === 401 || answer.statusCode === 403)
      throw mapUpstreamStatus(answer.statusCode, answer.headers, answer.errorBody);
    const { reply, record } = exchange;
    record.errorType = `upstream_${answer.statusCode}`;
    await reply
      .code(answer.statusCode)
      .headers({ ...pickUpstreamHeaders(answer.headers), ...retryHeaders(record) })
      .send(answer.errorBody);
  },
  answer: relay,
};
