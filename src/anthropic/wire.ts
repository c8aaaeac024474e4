/**
 * The Anthropic Messages wire shapes the readers act on: the streamed events, and the message, usage
 * and content blocks inside them (and in a non-streamed answer). Types only, no code.
 *
 * A reader parses an event's data once and treats it as the event its SSE name announces; nothing is
 * validated, so every field is optional and checked where it is read. Fields and event types that no
 * reader uses are left out: readers ignore what they do not know.
 */

/** Token counts; message_delta's are cumulative, and any count may be absent or null. */
export interface WireUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  /** The cache writes split by lifetime (when the answer gives the split). */
  cache_creation?:
    | {
        ephemeral_5m_input_tokens?: number | null;
        ephemeral_1h_input_tokens?: number | null;
      }
    | null
    | undefined;
}

/** A content block: text{text}, tool_use{id, name, input}, or a type no reader uses. */
export interface WireContentBlock {
  type?: string;
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
}

/** A message: whole when not streamed, with `content: []` in message_start. */
export interface WireMessage {
  id?: string | undefined;
  model?: string | undefined;
  content?: readonly WireContentBlock[] | undefined;
  stop_reason?: string | null | undefined;
  usage?: WireUsage | undefined;
}

/** A content block's delta: text_delta{text}, input_json_delta{partial_json}, or another type. */
export interface WireBlockDelta {
  type?: string;
  text?: string;
  partial_json?: string;
}

export interface MessageStartEvent {
  type: 'message_start';
  message?: WireMessage;
}

export interface ContentBlockStartEvent {
  type: 'content_block_start';
  index?: number;
  content_block?: WireContentBlock;
}

export interface ContentBlockDeltaEvent {
  type: 'content_block_delta';
  index?: number;
  delta?: WireBlockDelta;
}

export interface ContentBlockStopEvent {
  type: 'content_block_stop';
  index?: number;
}

export interface MessageDeltaEvent {
  type: 'message_delta';
  delta?: { stop_reason?: string | null };
  usage?: WireUsage;
}

export interface MessageStopEvent {
  type: 'message_stop';
}

export interface PingEvent {
  type: 'ping';
}

/** An error after the 200: the stream ends with it. */
export interface StreamErrorEvent {
  type: 'error';
  error?: { type?: string; message?: string };
}

/** The failure an `error` event reports, with defaults for the fields a broken upstream left out. */
export function streamFailure(event: StreamErrorEvent): { type: string; message: string } {
  return {
    type: event.error?.type ?? 'upstream_error',
    message: event.error?.message ?? 'Upstream reported an error mid-stream',
  };
}

export type StreamEvent =
  | MessageStartEvent
  | ContentBlockStartEvent
  | ContentBlockDeltaEvent
  | ContentBlockStopEvent
  | MessageDeltaEvent
  | MessageStopEvent
  | PingEvent
  | StreamErrorEvent;

/** The event an SSE event name announces (its `type` equals the name). */
export type EventOf<N extends StreamEvent['type']> = Extract<StreamEvent, { type: N }>;
