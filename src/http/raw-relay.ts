import type { ServerResponse } from 'node:http';
import { MessageStreamReader, type StreamFailure } from '../anthropic/message-stream.ts';
import { SseDecoder } from '../sse/decoder.ts';
import type { UpstreamTimeouts } from '../upstream/anthropic-client.ts';
import type { UpstreamBody } from '../upstream/upstream-body.ts';
import { INCOMPLETE, midStreamFailure, type PumpOutcome } from './message-pump.ts';
import { anthropicErrorBody } from './error-shapes.ts';
import { sseEvent } from './sse-writer.ts';

export interface RawRelayResult {
  outcome: PumpOutcome;
  failure: StreamFailure | null;
  reader: MessageStreamReader;
}

/** Writes one upstream chunk; a slow client pauses the upstream until it has drained. */
function writeOrPause(res: ServerResponse, body: UpstreamBody, chunk: Buffer): void {
  if (res.write(chunk)) return;
  body.pause();
  res.once('drain', body.resume);
}

/**
 * Relays an upstream Messages SSE body byte for byte, chunk by chunk, respecting backpressure, while
 * a tap reads usage and completion alongside. If the upstream fails in a way the client cannot see
 * (cut, stall, ended without `message_stop`), one Anthropic `event: error` is appended so that the
 * stream never ends looking complete.
 */
export function relayRawStream(
  body: UpstreamBody,
  res: ServerResponse,
  requestId: string,
  timeouts: UpstreamTimeouts,
): Promise<RawRelayResult> {
  const reader = new MessageStreamReader(null);
  const tap = new SseDecoder(reader.onEvent);
  let tapBroken = false;
  return new Promise((resolve) => {
    const finish = (outcome: PumpOutcome, failure: StreamFailure | null, append: boolean): void => {
      if (append && failure && !res.destroyed) {
        // A partial event, if any, is closed first so that ours is read as an event of its own.
        const prefix = tap.idle ? '' : '\n\n';
        res.end(
          prefix +
            sseEvent('error', JSON.stringify(anthropicErrorBody(failure.type, failure.message, requestId))),
        );
      } else {
        res.end();
      }
      resolve({ outcome, failure, reader });
    };
    body.pipeTo({
      data: (chunk) => {
        if (!tapBroken) {
          try {
            tap.push(chunk);
          } catch {
            tapBroken = true;
          }
        }
        writeOrPause(res, body, chunk);
      },
      end: () => {
        if (reader.completed) finish('completed', null, false);
        else if (reader.failure) finish('failed', reader.failure, false);
        else finish('failed', INCOMPLETE, true);
      },
      error: (error) => {
        if (res.destroyed) {
          resolve({ outcome: 'client_closed', failure: null, reader });
          return;
        }
        finish(
          'failed',
          midStreamFailure(error, timeouts, 'The upstream connection was lost mid-stream'),
          true,
        );
      },
    });
  });
}

/** Relays a whole (non-streamed) upstream body byte for byte, keeping the chunks to read usage at the end. */
export function relayRawBody(
  body: UpstreamBody,
  res: ServerResponse,
): Promise<{ outcome: PumpOutcome; bytes: Buffer | null }> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    body.pipeTo({
      data: (chunk) => {
        chunks.push(chunk);
        writeOrPause(res, body, chunk);
      },
      end: () => {
        res.end();
        resolve({ outcome: 'completed', bytes: Buffer.concat(chunks) });
      },
      error: () => {
        // Headers are out: the only honest signal left is an aborted response.
        const clientGone = res.destroyed;
        res.destroy();
        resolve({ outcome: clientGone ? 'client_closed' : 'failed', bytes: null });
      },
    });
  });
}
