/**
 * The answer to POST /v1/messages: a plan of what it contains (blocks, stop reason, usage) and its
 * two renderings, the JSON message and the SSE frames. Every frame is serialised here, once, before
 * streaming starts. No I/O.
 */
import { defaultText, promptText, splitWords } from './simulated.ts';
import type { FakeBlock, MessageScenario } from './types.ts';
import { sse } from './wire.ts';
import type { JsonObject, Serialize } from './wire.ts';

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
}

export interface Plan {
  id: string;
  model: string;
  blocks: readonly FakeBlock[];
  stopReason: string;
  usage: Usage;
}

/** A pre-serialised SSE event; `kind` marks the points where a fault may trigger. */
export interface Frame {
  readonly text: string;
  readonly kind: 'other' | 'delta' | 'end';
}

/** The live API sends pings with spaced JSON even inside otherwise compact streams. */
const PING_EVENT = 'event: ping\ndata: {"type": "ping"}\n\n';

function pieceCount(block: FakeBlock): number {
  switch (block.type) {
    case 'text':
      return block.text.length;
    case 'thinking':
      return block.thinking.length + 1;
    case 'tool_use':
      return block.inputJson.length;
  }
}

/**
 * The blocks that fit in `maxTokens` output tokens (a piece is one token, as the usage counts it), or
 * undefined when they all fit. A text block is cut between pieces; a thinking or tool_use block that
 * does not fit whole is left out, as are the blocks after it.
 */
function fitBlocks(blocks: readonly FakeBlock[], maxTokens: number): FakeBlock[] | undefined {
  let left = maxTokens;
  const kept: FakeBlock[] = [];
  for (const block of blocks) {
    const cost = pieceCount(block);
    if (cost <= left) {
      kept.push(block);
      left -= cost;
      continue;
    }
    if (block.type === 'text' && left > 0) kept.push({ type: 'text', text: block.text.slice(0, left) });
    return kept;
  }
  return undefined;
}

/** The answer to `body`: the scenario's blocks (or the default text), stopped at max_tokens. */
export function makePlan(s: MessageScenario, body: JsonObject, id: string, simulated: boolean): Plan {
  const wanted: readonly FakeBlock[] = s.blocks ?? [
    { type: 'text', text: s.deltas ?? splitWords(defaultText(body, simulated)) },
  ];
  const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : Number.POSITIVE_INFINITY;
  const fitted = fitBlocks(wanted, maxTokens);
  const stopped = fitted !== undefined;
  const blocks = fitted ?? wanted;
  const spent = stopped ? maxTokens : blocks.reduce((n, b) => n + pieceCount(b), 0);
  const hasTool = blocks.some((b) => b.type === 'tool_use');
  const u = s.usage ?? {};
  return {
    id,
    model: typeof body.model === 'string' ? body.model : 'claude-sonnet-5',
    blocks,
    stopReason: stopped ? 'max_tokens' : (s.stopReason ?? (hasTool ? 'tool_use' : 'end_turn')),
    usage: {
      input_tokens: u.input_tokens ?? Math.max(1, splitWords(promptText(body)).length),
      output_tokens: u.output_tokens ?? spent,
      cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
      cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
      ...(u.cache_creation ? { cache_creation: u.cache_creation } : {}),
    },
  };
}

function contentOf(block: FakeBlock): JsonObject {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: block.text.join('') };
    case 'thinking':
      return { type: 'thinking', thinking: block.thinking.join(''), signature: block.signature };
    case 'tool_use': {
      const json = block.inputJson.join('');
      return {
        type: 'tool_use',
        id: block.id,
        name: block.name,
        input: json === '' ? {} : (JSON.parse(json) as unknown),
      };
    }
  }
}

export function messageJson(plan: Plan): JsonObject {
  return {
    id: plan.id,
    type: 'message',
    role: 'assistant',
    model: plan.model,
    content: plan.blocks.map(contentOf),
    stop_reason: plan.stopReason,
    stop_sequence: null,
    usage: plan.usage,
  };
}

function startEvent(plan: Plan, ser: Serialize): string {
  const { input_tokens, cache_creation_input_tokens, cache_read_input_tokens, cache_creation } = plan.usage;
  const message = {
    id: plan.id,
    type: 'message',
    role: 'assistant',
    content: [],
    model: plan.model,
    stop_reason: null,
    stop_sequence: null,
    usage: {
      input_tokens,
      cache_creation_input_tokens,
      cache_read_input_tokens,
      ...(cache_creation ? { cache_creation } : {}),
      output_tokens: 1,
    },
  };
  return sse('message_start', ser({ type: 'message_start', message }));
}

function pushBlock(frames: Frame[], block: FakeBlock, index: number, ser: Serialize): void {
  const start = (content_block: JsonObject): void => {
    frames.push({
      kind: 'other',
      text: sse('content_block_start', ser({ type: 'content_block_start', index, content_block })),
    });
  };
  const delta = (d: JsonObject): void => {
    frames.push({
      kind: 'delta',
      text: sse('content_block_delta', ser({ type: 'content_block_delta', index, delta: d })),
    });
  };
  switch (block.type) {
    case 'text':
      start({ type: 'text', text: '' });
      for (const text of block.text) delta({ type: 'text_delta', text });
      break;
    case 'thinking':
      start({ type: 'thinking', thinking: '' });
      for (const thinking of block.thinking) delta({ type: 'thinking_delta', thinking });
      delta({ type: 'signature_delta', signature: block.signature });
      break;
    case 'tool_use':
      start({ type: 'tool_use', id: block.id, name: block.name, input: {} });
      for (const partial_json of block.inputJson) delta({ type: 'input_json_delta', partial_json });
      break;
  }
  frames.push({ kind: 'other', text: sse('content_block_stop', ser({ type: 'content_block_stop', index })) });
}

export function buildFrames(plan: Plan, ping: boolean, ser: Serialize): Frame[] {
  const frames: Frame[] = [{ kind: 'other', text: startEvent(plan, ser) }];
  if (ping) frames.push({ kind: 'other', text: PING_EVENT });
  plan.blocks.forEach((block, index) => {
    pushBlock(frames, block, index, ser);
  });
  const messageDelta = {
    type: 'message_delta',
    delta: { stop_reason: plan.stopReason, stop_sequence: null },
    usage: { output_tokens: plan.usage.output_tokens },
  };
  frames.push({ kind: 'end', text: sse('message_delta', ser(messageDelta)) });
  frames.push({ kind: 'other', text: sse('message_stop', ser({ type: 'message_stop' })) });
  return frames;
}
