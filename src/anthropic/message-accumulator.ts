/**
 * Pure: the Messages SSE events of one answer → the message a non-streamed request would have
 * returned (text and tool_use blocks; thinking and other blocks are skipped). Fed like the other
 * readers with (event name, data); a failure (an `error` event, unparseable data, tool input that
 * is not JSON) is returned instead of thrown.
 */
import {
  emptyUsage,
  mergeUsage,
  parseEventData,
  unparseable,
  type StreamFailure,
  type Usage,
} from './message-stream.ts';
import {
  streamFailure,
  type ContentBlockDeltaEvent,
  type ContentBlockStartEvent,
  type ContentBlockStopEvent,
  type MessageDeltaEvent,
  type MessageStartEvent,
  type StreamErrorEvent,
} from './wire.ts';

export type AssembledBlock =
  { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: unknown };

export interface AssembledMessage {
  id: string | undefined;
  model: string | undefined;
  content: AssembledBlock[];
  stop_reason: string | null;
  usage: Usage;
}

interface OpenBlock {
  type: 'text' | 'tool_use';
  id: string;
  name: string;
  /** Text pieces, or partial JSON pieces of a tool's input. */
  pieces: string[];
}

export class MessageAccumulator {
  readonly message: AssembledMessage = {
    id: undefined,
    model: undefined,
    content: [],
    stop_reason: null,
    usage: emptyUsage(),
  };
  private readonly open = new Map<number, OpenBlock>();

  readonly onEvent = (name: string, data: string): StreamFailure | null => {
    if (name === 'ping' || name === 'message_stop') return null;
    const event = parseEventData(data);
    if (event === undefined) return unparseable(name);
    switch (name) {
      case 'content_block_delta':
        this.delta(event as ContentBlockDeltaEvent);
        return null;
      case 'content_block_start':
        this.start(event as ContentBlockStartEvent);
        return null;
      case 'content_block_stop':
        return this.stop((event as ContentBlockStopEvent).index ?? -1);
      case 'message_start': {
        const { message } = event as MessageStartEvent;
        this.message.id = message?.id;
        this.message.model = message?.model;
        mergeUsage(this.message.usage, message?.usage);
        return null;
      }
      case 'message_delta': {
        const { delta, usage } = event as MessageDeltaEvent;
        if (delta?.stop_reason) this.message.stop_reason = delta.stop_reason;
        mergeUsage(this.message.usage, usage);
        return null;
      }
      case 'error':
        return streamFailure(event as StreamErrorEvent);
      default:
        return null;
    }
  };

  private start(event: ContentBlockStartEvent): void {
    const block = event.content_block;
    if (event.index === undefined || (block?.type !== 'text' && block?.type !== 'tool_use')) return;
    const pieces = block.type === 'text' && block.text ? [block.text] : [];
    this.open.set(event.index, { type: block.type, id: block.id ?? '', name: block.name ?? '', pieces });
  }

  private delta(event: ContentBlockDeltaEvent): void {
    const block = this.open.get(event.index ?? -1);
    const delta = event.delta;
    if (block === undefined || delta === undefined) return;
    if (delta.type === 'text_delta' && typeof delta.text === 'string') block.pieces.push(delta.text);
    else if (delta.type === 'input_json_delta' && typeof delta.partial_json === 'string')
      block.pieces.push(delta.partial_json);
  }

  private stop(index: number): StreamFailure | null {
    const block = this.open.get(index);
    if (block === undefined) return null;
    this.open.delete(index);
    const joined = block.pieces.join('');
    if (block.type === 'text') {
      this.message.content.push({ type: 'text', text: joined });
      return null;
    }
    try {
      this.message.content.push({
        type: 'tool_use',
        id: block.id,
        name: block.name,
        input: joined.trim() === '' ? {} : (JSON.parse(joined) as unknown),
      });
      return null;
    } catch {
      return {
        type: 'upstream_error',
        message: `Upstream sent tool input that is not JSON for "${block.name}"`,
      };
    }
  }
}
