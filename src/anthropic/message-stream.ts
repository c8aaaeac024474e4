/**
 * Pure interpretation of the Anthropic Messages stream: SSE events in, text deltas, usage, stop
 * reason and failures out. Knows nothing of HTTP. Unknown event types and non-text deltas are ignored.
 */
import { textDeltaLiteral } from './text-delta.ts';
import { streamFailure, type EventOf, type StreamEvent, type WireUsage } from './wire.ts';

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** How `cache_creation_input_tokens` splits by cache lifetime, when the answer said (else: all 5-minute). */
  cache_creation?: CacheCreation | undefined;
}

export interface CacheCreation {
  ephemeral_5m_input_tokens: number;
  ephemeral_1h_input_tokens: number;
}

export interface StreamFailure {
  type: string;
  message: string;
}

/** An event's data parsed as a JSON object, or undefined when it is not one (see `unparseable`). */
export function parseEventData(data: string): object | undefined {
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The failure to report for an event whose data is not JSON: the stream cannot be trusted. */
export function unparseable(name: string): StreamFailure {
  return { type: 'upstream_error', message: `Upstream sent unparseable data in a "${name}" event` };
}

export function emptyUsage(): Usage {
  return { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
}

/** Copies the counts present in `from` (message_delta usage is cumulative, so later values win). */
export function mergeUsage(into: Usage, from: WireUsage | undefined): void {
  if (!from) return;
  if (typeof from.input_tokens === 'number') into.input_tokens = from.input_tokens;
  if (typeof from.output_tokens === 'number') into.output_tokens = from.output_tokens;
  if (typeof from.cache_creation_input_tokens === 'number')
    into.cache_creation_input_tokens = from.cache_creation_input_tokens;
  if (typeof from.cache_read_input_tokens === 'number')
    into.cache_read_input_tokens = from.cache_read_input_tokens;
  const split = from.cache_creation;
  if (typeof split === 'object' && split !== null) {
    const m5 = split.ephemeral_5m_input_tokens;
    const h1 = split.ephemeral_1h_input_tokens;
    into.cache_creation = {
      ephemeral_5m_input_tokens:
        typeof m5 === 'number' ? m5 : (into.cache_creation?.ephemeral_5m_input_tokens ?? 0),
      ephemeral_1h_input_tokens:
        typeof h1 === 'number' ? h1 : (into.cache_creation?.ephemeral_1h_input_tokens ?? 0),
    };
  }
}

export class MessageStreamReader {
  readonly usage: Usage = emptyUsage();
  stopReason: string | null = null;
  model: string | null = null;
  /** `message_stop` was seen: the answer is complete. */
  completed = false;
  /** Set once; after a failure the stream must be abandoned. */
  failure: StreamFailure | null = null;

  private readonly onTextLiteral: ((literal: string) => void) | null;

  /**
   * `onTextLiteral` receives each text delta as a JSON string literal (quotes included), ready to be
   * embedded in JSON as it is; `JSON.parse(literal)` gives the text. Null: only usage, stop reason and
   * failures are read (text deltas are not even looked at).
   */
  constructor(onTextLiteral: ((literal: string) => void) | null) {
    this.onTextLiteral = onTextLiteral;
  }

  /** Feed one SSE event (arrow property so it can be handed to the decoder without a closure per call). */
  readonly onEvent = (name: string, data: string): void => {
    if (this.failure !== null) return;
    switch (name) {
      case 'content_block_delta': {
        if (this.onTextLiteral === null) return;
        const literal = textDeltaLiteral(data);
        if (literal !== null) {
          this.onTextLiteral(literal);
          return;
        }
        const delta = this.parse(name, data)?.delta;
        if (delta?.type === 'text_delta' && typeof delta.text === 'string')
          this.onTextLiteral(JSON.stringify(delta.text));
        return;
      }
      case 'message_start': {
        const message = this.parse(name, data)?.message;
        this.model = message?.model ?? null;
        mergeUsage(this.usage, message?.usage);
        return;
      }
      case 'message_delta': {
        const event = this.parse(name, data);
        if (event?.delta?.stop_reason) this.stopReason = event.delta.stop_reason;
        mergeUsage(this.usage, event?.usage);
        return;
      }
      case 'message_stop':
        this.completed = true;
        return;
      case 'error': {
        const event = this.parse(name, data);
        if (event) {
          const failure = streamFailure(event);
          this.fail(failure.type, failure.message);
        }
        return;
      }
      default:
        // ping, content_block_start/stop and event types added in the future carry nothing we use.
        return;
    }
  };

  /** The data as the event `name` announces (a cast, nothing checked), or null after failing the stream. */
  private parse<N extends StreamEvent['type']>(name: N, data: string): EventOf<N> | null {
    const event = parseEventData(data) as EventOf<N> | undefined;
    if (event !== undefined) return event;
    const failure = unparseable(name);
    this.fail(failure.type, failure.message);
    return null;
  }

  fail(type: string, message: string): void {
    this.failure ??= { type, message };
  }
}
