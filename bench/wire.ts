/**
 * What the load generator sends and expects, shared with the fake upstream. The answer's shape is
 * chosen by directives inside the prompt (`n=<deltas> d=<ms between deltas> run=<tag>`), so every
 * relay passes it on unchanged and the fake needs no per-scenario state.
 */

export interface AnswerShape {
  /** Number of text deltas. */
  deltas: number;
  /** Milliseconds before each delta (0: the whole answer in one write). */
  delayMs: number;
}

/** `anthropic`: Messages API SSE (content_block_delta ... message_stop). `query`: /llm/query SSE (delta ... done). */
export type Protocol = 'anthropic' | 'query';

export const MODEL = 'claude-sonnet-5';

export function prompt(shape: AnswerShape, run: string): string {
  return `bench n=${shape.deltas} d=${shape.delayMs} run=${run}`;
}

export function parsePrompt(text: string): AnswerShape & { run: string } {
  const num = (re: RegExp, fallback: number): number => {
    const m = re.exec(text);
    return m?.[1] === undefined ? fallback : Math.min(Number(m[1]), 100_000);
  };
  return {
    deltas: num(/\bn=(\d+)/, 5),
    delayMs: num(/\bd=(\d+)/, 0),
    run: /\brun=([\w.-]+)/.exec(text)?.[1] ?? 'none',
  };
}

/** The i-th text delta: a short token, like a real model's. */
export function deltaText(i: number): string {
  return ` tok${i % 100}`;
}

export function answerText(deltas: number): string {
  let text = '';
  for (let i = 0; i < deltas; i++) text += deltaText(i);
  return text;
}

/**
 * The request body for a protocol. `stream: false` asks for one JSON answer. `fields` are added to a
 * streamed /llm/query body (e.g. `"resumable": true`; a resumable answer cannot be asked unstreamed).
 */
export function requestBody(
  protocol: Protocol,
  shape: AnswerShape,
  run: string,
  stream: boolean,
  fields?: Record<string, unknown>,
): string {
  const content = prompt(shape, run);
  if (protocol === 'query') {
    return JSON.stringify(
      stream
        ? { prompt: content, max_tokens: 256, ...fields }
        : { prompt: content, max_tokens: 256, stream: false },
    );
  }
  return JSON.stringify({ model: MODEL, max_tokens: 256, stream, messages: [{ role: 'user', content }] });
}

export interface Markers {
  content: Buffer;
  end: Buffer;
  error: Buffer;
}

const MARKERS: Record<Protocol, Markers> = {
  anthropic: {
    content: Buffer.from('event: content_block_delta'),
    end: Buffer.from('event: message_stop'),
    error: Buffer.from('event: error'),
  },
  query: {
    content: Buffer.from('event: delta\n'),
    end: Buffer.from('event: done\n'),
    error: Buffer.from('event: error'),
  },
};

export function markers(protocol: Protocol): Markers {
  return MARKERS[protocol];
}

/** The answer text inside a non-streamed JSON answer of either protocol, or undefined. */
export function jsonAnswerText(protocol: Protocol, body: string): string | undefined {
  try {
    const value = JSON.parse(body) as { text?: unknown; content?: { type?: unknown; text?: unknown }[] };
    if (protocol === 'query') return typeof value.text === 'string' ? value.text : undefined;
    const block = value.content?.[0];
    return block?.type === 'text' && typeof block.text === 'string' ? block.text : undefined;
  } catch {
    return undefined;
  }
}
