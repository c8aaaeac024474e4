import { MessageStreamReader, type StreamFailure } from '../anthropic/message-stream.ts';
import { SseDecoder, type SseEventHandler } from '../sse/decoder.ts';
import type { UpstreamBody } from '../upstream/upstream-body.ts';
import { classifyNetworkError, type UpstreamTimeouts } from '../upstream/anthropic-client.ts';
import { ConnectorError } from '../errors.ts';

export type PumpOutcome = 'completed' | 'failed' | 'client_closed';

export interface PumpHooks {
  /**
   * Each text delta, in order, as a JSON string literal (see MessageStreamReader); null when
   * `onEvent` reads the events (deltas are then parsed once).
   */
  onTextLiteral: ((literal: string) => void) | null;
  /**
   * Every event while the stream is healthy, after the reader has seen it; a failure it returns
   * (e.g. data it cannot parse) ends the stream like one the reader found.
   */
  onEvent?: (name: string, data: string) => StreamFailure | null;
  /** Before an upstream chunk is decoded (e.g. cork the socket). */
  beforeChunk?(): void;
  /**
   * After a chunk was decoded, unless the stream ended with it (the caller then writes what it
   * produced with its final write); return false to pause the upstream until `resume` is called.
   */
  afterChunk?(resume: () => void): boolean;
  /** True once the client has gone away. */
  clientGone(): boolean;
}

export interface PumpResult {
  outcome: PumpOutcome;
  reader: MessageStreamReader;
  failure: StreamFailure | null;
}

/** The upstream stream ended before `message_stop`. */
export const INCOMPLETE: StreamFailure = {
  type: 'stream_incomplete',
  message: 'The upstream stream ended before the answer was complete',
};

/**
 * Reads an upstream Messages SSE body to its end, handing text deltas to `hooks.onTextLiteral` as each
 * chunk arrives. Resolves as soon as `message_stop` is seen (the rest of the body is drained so the
 * connection returns to the pool) or on the first failure (the body is then destroyed).
 */
export function pumpMessageStream(
  body: UpstreamBody,
  hooks: PumpHooks,
  timeouts: UpstreamTimeouts,
): Promise<PumpResult> {
  const reader = new MessageStreamReader(hooks.onTextLiteral);
  const decoder = new SseDecoder(hooks.onEvent ? alongside(reader, hooks.onEvent) : reader.onEvent);
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: PumpOutcome, failure: StreamFailure | null): void => {
      if (settled) return;
      settled = true;
      if (outcome === 'completed') body.discardRest();
      else body.destroy();
      resolve({ outcome, reader, failure });
    };
    body.pipeTo({
      data: (chunk) => {
        hooks.beforeChunk?.();
        try {
          decoder.push(chunk);
        } catch {
          reader.fail('upstream_error', 'Upstream sent an SSE line that is too long');
        }
        // At the end, what this chunk produced is left to the caller's final write.
        if (reader.failure) settle('failed', reader.failure);
        else if (reader.completed) settle('completed', null);
        else if (hooks.afterChunk?.(body.resume) === false) body.pause();
      },
      end: () => {
        settle(hooks.clientGone() ? 'client_closed' : 'failed', INCOMPLETE);
      },
      error: (error) => {
        if (hooks.clientGone()) {
          settle('client_closed', null);
          return;
        }
        settle('failed', midStreamFailure(error, timeouts, `${INCOMPLETE.message} (connection lost)`));
      },
    });
  });
}

/** An upstream body that failed mid-stream: the read timeout, or else the connection lost (`lostMessage`). */
export function midStreamFailure(
  error: unknown,
  timeouts: UpstreamTimeouts,
  lostMessage: string,
): StreamFailure {
  const mapped = classifyNetworkError(error, timeouts);
  return mapped.type === 'upstream_timeout'
    ? { type: 'upstream_timeout', message: mapped.message }
    : { type: 'stream_incomplete', message: lostMessage };
}

/** An answer with `"stream": false` broken mid-way: 504 when the upstream fell silent, else 502. */
export function brokenAnswer(failure: StreamFailure): ConnectorError {
  if (failure.type === 'upstream_timeout')
    return new ConnectorError('upstream_timeout', 504, failure.message);
  return new ConnectorError('upstream_error', 502, failure.message);
}

/** The reader first, then `onEvent`, until either has found a failure. */
function alongside(reader: MessageStreamReader, onEvent: NonNullable<PumpHooks['onEvent']>): SseEventHandler {
  return (name, data) => {
    reader.onEvent(name, data);
    if (reader.failure !== null) return;
    const failure = onEvent(name, data);
    if (failure !== null) reader.fail(failure.type, failure.message);
  };
}
