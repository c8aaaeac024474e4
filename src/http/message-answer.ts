import type { FastifyReply } from 'fastify';
import type { UpstreamBody } from '../upstream/upstream-body.ts';
import { brokenAnswer, pumpMessageStream, type PumpHooks, type PumpResult } from './message-pump.ts';
import type { AnswerResult, Exchange } from './pipeline.ts';
import { SseBatch, writeSseHead } from './sse-writer.ts';

/** How an API frames a streamed Messages answer as its own SSE events. */
export interface StreamFraming {
  /** Written with the head and the first upstream chunk (e.g. a `start` event). */
  readonly first?: string;
  /** The pump's readers, writing what each event produces with `add`. */
  readers(add: (text: string) => void): Pick<PumpHooks, 'onTextLiteral' | 'onEvent'>;
  /** Written last: the end of a complete answer, or the error event of a broken one. */
  last(result: PumpResult): string;
}

export function resultOf(pump: PumpResult): AnswerResult {
  return {
    outcome: pump.outcome,
    failure: pump.failure,
    usage: pump.reader.usage,
    stopReason: pump.reader.stopReason,
  };
}

/**
 * Streams an upstream Messages answer as SSE in the API's framing: the status (200) was decided when
 * the answer began; a failure after that is the framing's last event.
 */
export async function streamMessage(
  exchange: Exchange,
  body: UpstreamBody,
  framing: StreamFraming,
): Promise<AnswerResult> {
  const { reply, config } = exchange;
  reply.hijack();
  const res = reply.raw;
  exchange.streamStarted();
  // After hijack, headers set on the reply (rate limits, CORS, request id) are only sent if written here.
  const chunked = writeSseHead(reply);
  const batch = new SseBatch(res, chunked, config.keepAliveIntervalMs, framing.first);
  const result = await pumpMessageStream(body, { ...framing.readers(batch.add), ...batch.hooks }, config);
  batch.end(framing.last(result));
  return resultOf(result);
}

/**
 * Reads a whole upstream Messages answer; `send` answers the client once it is complete. A broken
 * answer is an honest error status (504 when the upstream fell silent, else 502), never a partial one.
 */
export async function collectMessage(
  exchange: Exchange,
  body: UpstreamBody,
  readers: Pick<PumpHooks, 'onTextLiteral' | 'onEvent'>,
  send: (result: PumpResult) => FastifyReply,
): Promise<AnswerResult> {
  const { reply, config } = exchange;
  const result = await pumpMessageStream(body, { ...readers, clientGone: () => reply.raw.destroyed }, config);
  if (result.outcome === 'completed') {
    exchange.record.markFirstByte();
    await send(result);
  } else if (result.failure) {
    // The tokens of a broken answer were spent all the same: they count against the limits.
    exchange.record.usage = result.reader.usage;
    throw brokenAnswer(result.failure);
  }
  return resultOf(result);
}
